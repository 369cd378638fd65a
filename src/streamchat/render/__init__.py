"""Markdown -> sanitized HTML, whole (`render_markdown`) or incrementally (`MarkdownStream`).

One job per module:

* `_engine`: markdown-it-py set up for GitHub Flavored Markdown, with its math, task list,
  autolink, image and link rules: the one engine of the widget, the saved copy, the
  transcript and the terminal;
* `_sanitize`: the nh3 allowlists every piece of HTML goes through;
* `_highlight`: Pygments, one code line at a time, and the theme's CSS;
* `_repair`: the open block made to look finished, and the cost guards;
* `_blocks`: the incremental block machine (where top-level blocks end, by the engine's
  line maps); `_regions`: the kinds of open block it builds part by part; `_parts`: a
  paragraph's cuts and the pieces they share;
* `_patches`: the patch ops and their UTF-16 arithmetic (the wire contract);
* `_stream`: `render_markdown` and `MarkdownStream`.
"""

from ._engine import parser
from ._highlight import highlight_css
from ._patches import Patch, committed, live_patch, spliced, utf16_length
from ._repair import repair
from ._stream import BlockSplit, MarkdownStream, render_markdown

__all__ = [
    "BlockSplit",
    "MarkdownStream",
    "Patch",
    "committed",
    "highlight_css",
    "live_patch",
    "parser",
    "render_markdown",
    "repair",
    "spliced",
    "utf16_length",
]
