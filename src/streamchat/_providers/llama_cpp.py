"""llama.cpp's native `/completion` stream."""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Reader, Sink, as_dict, as_str

__all__ = ["LlamaCppReader"]


class LlamaCppReader(Reader):
    """llama.cpp's native `/completion` stream: `{"content", "stop"}` objects.

    https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md
    The last one has `"stop": true`, why it stopped (`stop_type`) and the token counts.
    """

    name = "llama.cpp"
    marker = '"stop": true'

    # stop_type in the names the other formats use for the same reasons.
    _REASONS: ClassVar[dict[str, str]] = {"eos": "stop", "word": "stop", "limit": "length"}

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        return isinstance(payload.get("stop"), bool) and isinstance(payload.get("content"), str)

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        sink.text(payload.get("content"))
        if payload.get("stop") is True:
            timings = as_dict(payload.get("timings"))
            sink.count(
                payload.get("tokens_evaluated", timings.get("prompt_n")),
                payload.get("tokens_predicted", timings.get("predicted_n")),
            )
            kind = as_str(payload.get("stop_type"))
            sink.complete(self._REASONS.get(kind or "", kind))
