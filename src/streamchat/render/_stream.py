"""`render_markdown` and `MarkdownStream`: Markdown -> sanitized HTML, whole or as it grows.

Every piece of model output is untrusted: a model repeats whatever a web page, a document
or a user slipped into its context, so its Markdown is treated like HTML from a stranger.
Raw HTML in the source is escaped by the engine (`_engine`), and all HTML is cleaned by
the sanitizer (`_sanitize`). Remote images are the classic exfiltration channel of prompt
injection, so by default an image becomes a link the reader may choose to follow.
"""

from __future__ import annotations

from ._blocks import Machine
from ._parts import push
from ._patches import Patch, live_patch, utf16_length

__all__ = ["BlockSplit", "MarkdownStream", "render_markdown"]


def render_markdown(text: str, *, allow_images: bool = False) -> str:
    """Render an LLM answer (GitHub Flavored Markdown) to sanitized HTML.

    Supported: CommonMark (https://spec.commonmark.org/0.31.2/) with GFM tables,
    ~~strikethrough~~, task lists and extended autolinks
    (https://github.github.com/gfm/); fenced code highlighted by Pygments (token classes
    inside ``<div class="language-X streamchat-code">``, coloured by static/highlight.css);
    LaTeX math (``$...$``, ``\\(...\\)``, ``$$...$$``, ``\\[...\\]``) as MathML (`_math`).

    Raw HTML is escaped (shown as text); links open in a new tab with
    rel="noopener noreferrer" (the opened page gets no handle on the notebook:
    https://html.spec.whatwg.org/multipage/links.html#link-type-noopener); only
    http(s)/mailto (and relative) URLs survive; images become "🖼 alt" links unless
    `allow_images` is true.
    """
    return Machine(allow_images).render_all(_lines(text), definitions=True)


def _lines(text: str) -> str:
    """CR LF and a lone CR end a line too (https://spec.commonmark.org/0.31.2/#line-ending):
    written as LF, the stream's lines are the engine's."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


class MarkdownStream:
    """Renders a growing Markdown answer, sending only what changed.

    A top-level block is rendered once, when a later block has begun ("append", or a
    "commit" of what the live part already shows), and the open last block is updated by
    an "extend" patch about the size of the new text; within the open block only its
    unfinished part is rendered again (see `_blocks`), so the cost per update stays flat
    whatever the block's size. The open block is repaired before it is rendered
    (`_repair.repair`): an unclosed fence shows as code and unfinished emphasis, code
    spans and links never show their markers.

    After `finish()`, `html == render_markdown(text)`; if a late reference-link
    definition changed an earlier block, `finish()` sends a "reset".
    """

    def __init__(self, *, allow_images: bool = False) -> None:
        self._allow_images = allow_images
        self._machine = Machine(allow_images, record=True)
        self._frozen_text: list[str] = []
        self._frozen_html: list[str] = []
        self._tail = ""  # source of the open region
        # Text of its live line added since `_tail` was last whole, in pieces (`push`): a
        # long line shown as escaped text grows without copying what it had.
        self._grown: list[str] = []
        self._scanned = 0  # where its first line not yet fed starts
        # The live part as last sent: a start that no longer changes, in pieces, and the
        # rest; an update compares only the rest with the block's new HTML after that start.
        self._shown_start: list[str] = []
        self._shown_size = 0
        self._shown_rest = ""
        self._finished = False
        self._cr = ""  # a CR that ended the last delta: a LF may follow it

    @property
    def text(self) -> str:
        return "".join(self._frozen_text) + self._open_source()

    def _open_source(self) -> str:
        """The open region's source, whole."""
        if self._grown:
            self._tail = "".join([self._tail, *self._grown])  # (one copy of a long line)
            self._grown = []
        return self._tail

    @property
    def html(self) -> str:
        return "".join(self._frozen_html) + self._shown_live()

    @property
    def shown(self) -> tuple[str, str]:
        """(frozen, live) HTML: what the patches so far left in a view."""
        return "".join(self._frozen_html), self._shown_live()

    def append(self, delta: str) -> list[Patch]:
        if self._finished:
            raise RuntimeError("MarkdownStream.append() after finish()")
        if (patches := self._grow(delta)) is not None:
            return patches
        delta, self._cr = self._cr + delta, ""
        if delta.endswith("\r"):
            delta, self._cr = delta[:-1], "\r"
        self._tail = self._open_source() + _lines(delta)
        frozen = self._take_lines()
        partial = self._tail[self._scanned :]
        if self._machine.starts_block(partial.rstrip("\r")):
            frozen.append(self._freeze(self._scanned))  # the block before it is done
        patches = self._frozen_patches([block for block in frozen if block])
        fixed, rest = self._machine.live(partial, self._shown_size > 0 or bool(self._shown_rest))
        if (patch := self._live_patch(fixed, rest)) is not None:
            patches.append(patch)
        return patches

    def _grow(self, delta: str) -> list[Patch] | None:
        """The live line, shown as escaped text, went on by `delta` without ending: the
        update costs the size of `delta`, however long the line (None: not so)."""
        if self._cr or "\n" in delta or "\r" in delta or not (self._shown_size or self._shown_rest):
            return None
        live = self._machine.grow(delta)
        if live is None:
            return None
        push(self._grown, delta)
        patch = self._live_patch(*live)
        return [patch] if patch is not None else []

    def _take_lines(self) -> list[str]:
        """Feed the open region's whole lines; return the HTML of the blocks they finished."""
        frozen: list[str] = []
        while (end := self._tail.find("\n", self._scanned)) >= 0:
            start, self._scanned = self._scanned, end + 1
            finished = self._machine.feed(self._tail[start:end])
            self._frozen_html += finished
            frozen += finished
            # The machine keeps the lines of its open region: what it froze is text too.
            self._settle_text()
        return frozen

    def _settle_text(self) -> None:
        region = self._machine.region
        kept = len(region.lines) if region is not None else 0
        lines_fed = self._tail.count("\n", 0, self._scanned)
        if kept < lines_fed:
            cut = 0
            for _ in range(lines_fed - kept):
                cut = self._tail.index("\n", cut) + 1
            self._frozen_text.append(self._tail[:cut])
            self._tail = self._tail[cut:]
            self._scanned -= cut

    def _freeze(self, start: int) -> str:
        block_html = self._machine.freeze()
        if block_html:
            self._frozen_html.append(block_html)
        self._frozen_text.append(self._tail[:start])
        self._tail = self._tail[start:]
        self._scanned -= start
        return block_html

    def _shown_live(self) -> str:
        if len(self._shown_start) > 1:
            self._shown_start = ["".join(self._shown_start)]
        return "".join(self._shown_start) + self._shown_rest

    def _live_patch(self, fixed: int, rest: str) -> Patch | None:
        """The patch from the live part as shown to its first `fixed` characters + `rest`."""
        if fixed < self._shown_size:  # rendered whole again (the start is 0 then)
            old = self._shown_live()
            self._shown_start, self._shown_size = [old[:fixed]], fixed
            old_rest = old[fixed:]
        else:
            moved = fixed - self._shown_size
            if moved:
                push(self._shown_start, self._shown_rest[:moved])
                self._shown_size = fixed
            old_rest = self._shown_rest[moved:]
        self._shown_rest = rest
        return live_patch(old_rest, rest, whole=not fixed)

    def finish(self) -> list[Patch]:
        """Render the last block as final; check the result against a full render."""
        if self._finished:
            return []
        self._finished = True
        self._tail = self._open_source() + ("\n" if self._cr else "")
        frozen = self._take_lines()
        if self._scanned < len(self._tail):
            finished = self._machine.feed(self._tail[self._scanned :])
            self._frozen_html += finished
            frozen += finished
            self._scanned = len(self._tail)
        last = self._machine.freeze()
        self._frozen_text.append(self._tail)
        self._tail, self._scanned = "", 0
        if last:
            self._frozen_html.append(last)
        patches = self._frozen_patches([block for block in [*frozen, last] if block])
        if self._shown_size or self._shown_rest:
            self._shown_start, self._shown_size, self._shown_rest = [], 0, ""
            patches.append(Patch("tail", ""))
        if (changed := self._late_references()) is not None:
            full = "".join(changed)
            self._frozen_html = [full]
            patches.append(Patch("reset", full))
        return patches

    def _late_references(self) -> list[str] | None:
        """The frozen blocks again if a definition that came after one of them changes it
        (a block may use a definition made later:
        https://spec.commonmark.org/0.31.2/#link-reference-definitions), else None.

        Only a block that may use a label whose definition changed after the block froze
        is rendered again, with all the definitions: the cost is that of the blocks that
        may change, not of the whole answer.
        """
        machine, finals = self._machine, self._machine.finals
        assert finals is not None and len(finals) == len(self._frozen_html)
        if not machine.stale:
            return None  # no label changed after a block that may use it began
        changes = machine.changes
        changed_at = {label: version for version, label in enumerate(changes)}
        final = Machine(self._allow_images, machine.env)  # reads the definitions, adds none
        blocks, changed = self._frozen_html, False
        for index, (source, version, labels) in enumerate(finals):
            if version == len(changes) or not labels:
                continue
            if any(changed_at.get(label, -1) >= version for label in labels):
                again = final.freeze_lines(source)
                if again != blocks[index]:
                    blocks = blocks if changed else list(blocks)
                    blocks[index], changed = again, True
        return blocks if changed else None

    def _frozen_patches(self, blocks: list[str]) -> list[Patch]:
        """Patches that freeze the finished `blocks`: a commit of the ones the live part
        already shows as they are (the usual case: a block finishes as it was last
        rendered, and is not sent again), an append of the others. The live part as
        shown is left as the views' live part after them."""
        if not blocks:
            return []
        live, shown = self._shown_live(), 0
        while shown < len(blocks) and live.startswith(blocks[shown]):
            live = live[len(blocks[shown]) :]
            shown += 1
        self._shown_start, self._shown_size, self._shown_rest = [], 0, live
        patches = []
        if size := utf16_length("".join(blocks[:shown])):
            patches.append(Patch("commit", size=size))
        if rest := "".join(blocks[shown:]):
            patches.append(Patch("append", rest))
        return patches


class BlockSplit:
    """The sources of the finished top-level blocks of a growing answer: the split
    `MarkdownStream` makes, for the terminal, which renders each block once with rich."""

    def __init__(self) -> None:
        self._stream = MarkdownStream()
        self._taken = 0

    @property
    def open(self) -> str:
        """The source of the open block."""
        return self._stream._open_source()

    def append(self, text: str) -> list[str]:
        """Add text; return the sources of the blocks it finished, in order."""
        self._stream.append(text)
        done = self._stream._frozen_text[self._taken :]
        self._taken = len(self._stream._frozen_text)
        return [source for source in done if source]
