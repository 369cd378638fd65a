"""`streamchat doctor`: send one real request and tell why an endpoint does not stream.

Half of streaming trouble lives on the server side: a proxy that buffers, gzip
that waits for a full buffer, HTTP/2 that resets the stream, a body cut before
its terminal chunk. Little of it shows in the headers; it shows in *when* the
bytes arrive. So `diagnose` sends the request the chat client would send,
timestamps every raw network chunk, decodes the body the way the client does,
and hands the recorded `Measurements` to `analyse`, a pure function that turns
them into a verdict and findings, each with its fix. Only `diagnose` does I/O:
`analyse` and the renderings work on recorded numbers, so they are tested on
synthetic timelines. docs/nginx.md explains the fixes at length.
"""

from ._analyse import analyse, held_events
from ._chart import sparkline
from ._measure import diagnose, offered_protocol
from ._model import Finding, Measurements, bursts
from ._recorder import ACCEPT_ENCODING
from ._report import Diagnosis

__all__ = [
    "ACCEPT_ENCODING",
    "Diagnosis",
    "Finding",
    "Measurements",
    "analyse",
    "bursts",
    "diagnose",
    "held_events",
    "offered_protocol",
    "sparkline",
]
