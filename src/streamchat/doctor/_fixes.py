"""What to do about each finding: the fix texts, in one place (docs/nginx.md says more)."""

from __future__ import annotations

from ..providers import key_variables

__all__ = [
    "FIX_ACCEL",
    "FIX_BUFFERING",
    "FIX_CACHE_CONTROL",
    "FIX_COMPRESSION",
    "FIX_CONNECT",
    "FIX_CONTENT_LENGTH",
    "FIX_CONTENT_TYPE",
    "FIX_END_MARKER",
    "FIX_HTTP2",
    "FIX_INCOMPLETE",
    "FIX_NOT_STREAMING",
    "FIX_PROVIDER_ERROR",
    "FIX_SHORT",
    "FIX_TIMEOUT",
    "FIX_UNTERMINATED",
    "status_fix",
]


def status_fix(status: int) -> str:
    if status < 400:
        return (
            "Use the URL it redirects to (see Location): clients do not follow a POST's redirect."
        )
    if status in (401, 403):
        return (
            f"Check the API key: {' / '.join(key_variables())} are sent"
            " only to their provider's own host over https; for any other server pass"
            " --header 'Authorization: Bearer ...'."
        )
    if status == 404:
        return "Check the URL's path and the model name (--model)."
    if status == 429:
        return "Rate limited or out of quota: wait (see Retry-After), or check the account."
    if status in (502, 503, 504):
        return (
            "A proxy could not get an answer from the upstream: check that the upstream"
            " runs, and raise the proxy's read timeout (nginx: proxy_read_timeout)."
        )
    return "Read the server's message above; a 400 usually names the field it rejects."


FIX_CONNECT = (
    "Check the URL (scheme, host, port), that the server runs and listens there, and for"
    " https its certificate."
)
FIX_PROVIDER_ERROR = (
    "Read the provider's message: a wrong model name, an exhausted quota or a rejected"
    " parameter. The transport worked."
)
FIX_NOT_STREAMING = (
    'Ask for a stream and serve it as one: OpenAI-style APIs need "stream": true in the body'
    " (streamchat sends it; a server that ignores it answers with one JSON document), Gemini"
    " the :streamGenerateContent?alt=sse URL. Answer with Content-Type: text/event-stream"
    " (NDJSON: application/x-ndjson). An HTML page is usually a login or error page of a proxy."
)
FIX_CONTENT_TYPE = (
    "Send Content-Type: text/event-stream (NDJSON: application/x-ndjson): proxies and CDNs"
    " decide by type whether to buffer and compress, and browsers' EventSource refuses any"
    " other type."
)
FIX_BUFFERING = (
    "Turn buffering off in every layer between the model and the client. nginx: send"
    " X-Accel-Buffering: no from the upstream, or proxy_buffering off; in the streaming"
    " location, and gzip off; there (docs/nginx.md). Apache: ProxyPass ... flushpackets=on and"
    " SetEnv no-gzip 1. The app must flush after each event (a streaming response, not a body"
    " built and returned at the end; no buffering compression middleware)."
)
FIX_COMPRESSION = (
    "Do not compress event streams: nginx gzip off; in the streaming location, or leave"
    " text/event-stream out of gzip_types; make compression middleware skip"
    " text/event-stream. Send Cache-Control: no-transform so intermediaries leave it alone."
)
FIX_CONTENT_LENGTH = (
    "Stream with chunked encoding: remove the layer that buffers the body and sets"
    " Content-Length (a buffering proxy, a compression middleware, a serverless platform that"
    " buffers responses)."
)
FIX_INCOMPLETE = (
    "Find what closed the connection: the upstream crashed or timed out (nginx's error log says"
    " 'upstream prematurely closed connection'), or a proxy's idle timeout fired: raise nginx"
    " proxy_read_timeout (60 s by default) and send an SSE comment line (': ping') every 15 s."
)
FIX_TIMEOUT = (
    "If the answer is genuinely long, raise --timeout. If nothing arrived, a proxy may be"
    " holding the whole answer (see buffering), or the model is slow to start."
)
FIX_UNTERMINATED = (
    "End every SSE event with a blank line, the last one too: clients drop an unterminated"
    " event (https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream)."
)
FIX_END_MARKER = (
    "End the stream with the format's completion marker (OpenAI: data: [DONE]; Anthropic:"
    ' message_stop; Ollama: a line with "done": true), or at least a finish_reason, so'
    " clients can tell a finished answer from a cut one."
)
FIX_HTTP2 = (
    "Serve the stream over HTTP/1.1: nginx: a separate server block (its own port or name)"
    " whose listen has no http2, for the streaming endpoint, and proxy_http_version 1.1 to"
    " the upstream; never forward Connection or Transfer-Encoding headers over HTTP/2."
)
FIX_CACHE_CONTROL = (
    "Send Cache-Control: no-cache (no-transform too, which also tells intermediaries not to"
    " compress): a cache that stores a stream waits for its end."
)
FIX_ACCEL = (
    "Send X-Accel-Buffering: no from the upstream on streaming responses: nginx then never"
    " buffers them, whatever its proxy_buffering setting."
)
FIX_SHORT = "Use a prompt with a longer answer, such as 'Count from 1 to 100, one per line.'"
