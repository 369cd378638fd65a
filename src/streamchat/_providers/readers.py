"""Every stream reader, in the order a payload's shape is sniffed.

One reader per module; `registry` says which provider uses which. What they
share (`Sink`, `Reader`, `excerpt`) lives in `base` and is re-exported here, so
this module's names are the ones it had before the split.
"""

from __future__ import annotations

from .ai_sdk import AiSdkReader
from .anthropic import AnthropicReader
from .base import Reader, Sink, excerpt
from .custom import CustomReader
from .gemini import GeminiReader
from .langchain import LangChainReader
from .llama_cpp import LlamaCppReader
from .ollama import OllamaReader
from .openai_chat import OpenAIChatReader
from .responses import ResponsesReader

__all__ = [
    "READERS",
    "AiSdkReader",
    "AnthropicReader",
    "CustomReader",
    "GeminiReader",
    "LangChainReader",
    "LlamaCppReader",
    "OllamaReader",
    "OpenAIChatReader",
    "Reader",
    "ResponsesReader",
    "Sink",
    "excerpt",
]

# Sniffing order: the hinted format is tried first, then these.
READERS: tuple[type[Reader], ...] = (
    OpenAIChatReader,
    ResponsesReader,
    AnthropicReader,
    GeminiReader,
    OllamaReader,
    LlamaCppReader,
    AiSdkReader,
    LangChainReader,
)
