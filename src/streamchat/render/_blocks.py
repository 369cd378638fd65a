"""The incremental block machine shared by `render_markdown` and `MarkdownStream`.

The source is split into top-level blocks with the engine's own line maps (`token.map`):
CommonMark parses blocks in one forward pass, so once a later top-level block has begun,
every block before it is final (https://spec.commonmark.org/0.31.2/#appendix-a-parsing-strategy).
Only the open region, the last block, is rendered again as text arrives, and even that is
built part by part where its kind allows: a fenced code block line by line, a table row by
row, a tight list item by item, a paragraph cut where nothing inline is open. Anything
else is parsed again whole while it stays within `_repair.MAX_BLOCK`; what is too costly
to render again and again (`_repair.Guard`) shows as escaped text.

A whole text is the same lines fed at once, so the streamed HTML equals
`render_markdown(text)` by construction.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import mdTrim, normalizeReference
from markdown_it.rules_core import StateCore, normalize
from markdown_it.token import Token

from . import _repair
from ._engine import parser, top_level_blocks
from ._regions import (
    FENCE_OPEN,
    LETTER,
    PARAGRAPH_START,
    Fence,
    List,
    ParagraphRegion,
    Raw,
    Region,
    Table,
    Whole,
    paragraph_lines,
)
from ._sanitize import sanitize

__all__ = ["Machine"]


def _expand(line: str) -> str:
    """A source line without its CR (the engine reads tabs itself)."""
    return line.rstrip("\r")


class Machine:
    """Top-level blocks from whole lines; the open region's HTML with a live last line."""

    def __init__(
        self, allow_images: bool, env: dict[str, Any] | None = None, *, record: bool = False
    ) -> None:
        self.allow_images = allow_images
        self.md: MarkdownIt = parser(allow_images)
        self.env: dict[str, Any] = env if env is not None else {}
        self.region: Region | None = None
        # The definitions the open region's last parse found: a parse of more of its lines
        # replaces them ("[a]: /u" may get its title on the next line); they are settled
        # when their block is final.
        self._open: dict[str, Any] = {}
        # Labels whose definition changed, in order: the definitions' version is its length.
        self.changes: list[str] = []
        # With `record`: each label's last change (its index in `changes`), the least
        # version of the final blocks that may use it, and the labels that changed at or
        # after the version of such a block: `finish` need look at no block if none did.
        self._changed: dict[str, int] = {}
        self._used: dict[str, int] = {}
        self.stale: set[str] = set()
        # With `record`, each final block's (source lines, definitions' version when it
        # froze, labels it may use): `MarkdownStream.finish` renders again only the blocks
        # a later definition may change.
        self.finals: list[Final] | None = [] if record else None
        # The definitions' version when the open region began: parts of its HTML may have
        # been rendered (and kept: a table's rows) with the definitions known since then.
        self._since = 0
        # A region shown as escaped text while its live line is too costly to render.
        # (the region, its text, the live line it was too costly with)
        self._provisional: tuple[Region, Raw, str] | None = None
        self._shown: Region | None = None  # what made the live HTML last returned
        # The live HTML last returned ends with a live line shown as escaped text (the
        # provisional one's, or a fence's long code line): a longer line shows as that
        # line's HTML and its new text, escaped (`grow`).
        self._growing = False

    def __deepcopy__(self, memo: dict[int, Any]) -> Machine:
        """A copy of the state (for tests); the engine is shared, it keeps none."""
        new = copy.copy(self)
        memo[id(self)] = new
        new.env = copy.deepcopy(self.env, memo)
        new.region = copy.deepcopy(self.region, memo)
        new._open = copy.deepcopy(self._open, memo)
        new.changes = list(self.changes)
        new._changed, new._used, new.stale = dict(self._changed), dict(self._used), set(self.stale)
        new.finals = None if self.finals is None else list(self.finals)
        return new

    # -- the engine --------------------------------------------------------------------------

    def parse(self, text: str) -> list[Token]:
        """Inline-rendering parse: it reads the definitions found so far and adds none
        (a definition being typed, "[a]: /u", must not be taken for "[a]: /url")."""
        return self.md.parse(text, {"references": _Definitions(self.env)})

    def render_tokens(self, tokens: list[Token]) -> str:
        html_text = self.md.renderer.render(tokens, self.md.options, self.env)
        return sanitize(html_text, self.allow_images)

    def render(self, text: str) -> str:
        """A piece of source as HTML, without the last line break. (The source gets one:
        markdown-it drops an unclosed fence's last line when no line break ends it.)"""
        source = text if text.endswith("\n") else text + "\n"
        return self.render_tokens(self.parse(source)).removesuffix("\n")

    def render_paragraph(self, text: str) -> str:
        """`render(text)` of text the engine reads as one paragraph, without its block
        rules (each would look at every line again): whole lines that go on the paragraph
        (`_regions.paragraph_lines`), starting with a letter and not ending before a
        line that changes them (`_parts.Paragraph` cuts only before a letter)."""
        state = StateCore(text, self.md, {"references": _Definitions(self.env)})
        normalize(state)
        opening, inline = Token("paragraph_open", "p", 1), Token("inline", "", 0)
        closing = Token("paragraph_close", "p", -1)
        inline.content, inline.children, inline.level = mdTrim(state.src), [], 1
        for token in (opening, inline, closing):
            token.block = True
        state.tokens = [opening, inline, closing]
        for rule in _inline_rules(self.md):
            rule(state)
        return self.render_tokens(state.tokens).removesuffix("\n")

    def repair(self, text: str) -> str:
        return _repair.repair(self.md, text)

    # -- lines -------------------------------------------------------------------------------

    def feed(self, line: str) -> list[str]:
        """Take a whole source line; return the HTML of the blocks it finished."""
        line = _expand(line)
        region, self._growing = self.region, False
        if region is None:
            self._since = len(self.changes)
            self.region = self._classify([line], region=True)
            return []
        still_costly = self._still_costly(region, line)
        provisional, self._provisional = self._provisional, None  # its live line is whole
        if still_costly:
            # The live line that was too costly is whole now: the same measures
            # (`_costly`) find it too costly again; they need not be taken again.
            raw = provisional[1] if provisional is not None else None
            if raw is None or raw.lines or not raw.add(line):
                raw = Raw([line])
            self.region = raw
            return []
        if region.add(line):
            return self._guarded(provisional)
        return self._split([*region.lines, line])

    def render_all(self, text: str, *, definitions: bool = False) -> str:
        """A whole text, split by one parse of it into the blocks a stream would freeze;
        with `definitions`, the same parse gives its link reference definitions (a block
        may use one defined after it: https://spec.commonmark.org/0.31.2/#link-reference-definitions).

        Small blocks that no guard touches render as the stream renders them, the
        engine's one-shot HTML: consecutive ones render together, from that parse's
        own block tokens (a call costs more than a short block, and a second parse of
        their lines as much as the first). Others are built by their kind, as streamed.
        """
        lines = text.split("\n")
        if lines and not lines[-1]:
            lines.pop()
        if not lines:
            return ""
        tokens: list[Token] = []
        if PARAGRAPH_START.match(lines[0]) and paragraph_lines(lines):
            heads = [(0, -1)]  # one paragraph, as `_classify` and a stream find (no parse)
        else:
            # (The engine's `normalize` rule, for the tokens kept: a line stays a line.)
            source = "\n".join(lines).replace("\0", "\ufffd") + "\n"
            env = self.env if definitions else {"references": _Definitions(self.env)}
            self.md.block.parse(source, self.md, env, tokens)
            heads = _heads(tokens)
        out: list[str] = []
        group: tuple[int, int] | None = None  # tokens [start, end) of blocks rendered together
        grouped = 0  # characters in `group`
        # Small blocks seen before, and the HTML of those seen twice: a model stuck in a
        # loop repeats a block thousands of times, and it renders as it did (the
        # definitions are all known: its HTML depends on its source alone).
        seen: dict[str, str | None] = {}

        def flush() -> None:
            nonlocal group, grouped
            if group is not None:
                out.append(_ended(self._render_block_tokens(tokens[group[0] : group[1]])))
                group, grouped = None, 0

        ends = [*heads[1:], (len(lines), len(tokens))][: len(heads)]
        for (start, first), (end, last) in zip(heads, ends, strict=True):
            if first >= 0 and last == first + 1 and tokens[first].type == "reference":
                continue  # a definition: no HTML
            block = lines[start:end]
            size = sum(len(line) + 1 for line in block)
            if first >= 0 and (
                _plain_small(block, size)
                or (
                    size <= _GROUPED
                    and not self._costly(block)
                    and _delimiters(block) <= _DELIMITERS
                )
            ):
                if definitions and size <= _SEEN and len(seen) < _SEEN_BLOCKS:
                    key = "\n".join(block)
                    if key in seen:
                        flush()
                        again = seen[key]
                        if again is None:
                            again = seen[key] = _ended(
                                self._render_block_tokens(tokens[first:last])
                            )
                        out.append(again)
                        continue
                    seen[key] = None
                group = (group[0] if group is not None else first, last)
                grouped += size
                if grouped >= _GROUP:
                    flush()
                continue
            flush()
            out.append(self._final(self._classify(block)))
        flush()
        return "".join(out)

    def _render_block_tokens(self, tokens: list[Token]) -> str:
        """`render` of the source of whole top-level blocks, from their block tokens."""
        state = StateCore("", self.md, {"references": _Definitions(self.env)})
        state.tokens = tokens
        for rule in _inline_rules(self.md):
            rule(state)
        return self.render_tokens(state.tokens).removesuffix("\n")

    def _still_costly(self, region: Region, line: str) -> bool:
        provisional = self._provisional
        return (
            provisional is not None
            and provisional[0] is region
            and isinstance(region, Whole)
            and not region.lines
            and line.startswith(provisional[2])  # (the measures only grow with the line)
            and not FENCE_OPEN.match(line)
        )

    def starts_block(self, partial: str) -> bool:
        """The unfinished line starts a new block after a blank line, however it goes on:
        text that starts with a letter, after a blank line, outside a fence."""
        region = self.region
        return (
            region is not None
            and not isinstance(region, Fence)
            and bool(region.lines)
            and not region.lines[-1].strip()
            and any(line.strip() for line in region.lines)
            and LETTER.match(partial) is not None
        )

    def freeze(self) -> str:
        """Finish the open region (the caller fed its last line)."""
        region, self.region = self.region, None
        self._open = {}  # its definitions are settled
        if region is None:
            return ""
        return self._final(region)

    def freeze_lines(self, source: str) -> str:
        """A final block's HTML again, from its source (`Final`)."""
        return self._final(self._classify(source.split("\n")))

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        """The open region's live HTML: (how much of the HTML last returned is still its
        start, the HTML after it)."""
        partial = _expand(partial)
        region, self._growing = self.region, False
        if region is None or (isinstance(region, Whole | ParagraphRegion) and not region.lines):
            # Text that starts with a letter can only be a paragraph's; a line of more
            # pipes than a live table header may have is built like one too (in cuts).
            starts = PARAGRAPH_START.match(partial) or partial.count("|") > _repair.WIDEST
            if region is None or isinstance(region, ParagraphRegion) != bool(starts):
                if region is None:
                    self._since = len(self.changes)
                region = self.region = ParagraphRegion(self, []) if starts else Whole(self, [])
        if isinstance(region, _MEASURED) and self._partial_costly(region, partial):
            if self._provisional is None or self._provisional[0] is not region:
                self._provisional = (region, Raw(region.lines), partial)
            raw = self._provisional[1]
            self._provisional = (region, raw, partial)
            shown, self._shown = shown and self._shown is raw, raw
            fixed, rest = raw.live(partial, shown)
            self._growing = bool(partial)
            return fixed, _ended(rest)
        # A region may say what of its HTML is unchanged only if the views show its HTML.
        shown, self._shown = shown and self._shown is region, region
        fixed, rest = region.live(partial, shown)
        self._growing = isinstance(region, Fence) and region.growing
        return fixed, _ended(rest)

    def grow(self, added: str) -> tuple[int, str] | None:
        """`live(partial + added, True)` when the live line shows as escaped text, at the
        cost of `added` alone (no line break in it); None when that is not known to hold
        (then call `live`). A line too costly stays so as it grows (`_partial_costly`),
        its kind of block is known from its start, and it starts no block (`starts_block`
        said so of its start); but a line without a letter at its start becomes a
        paragraph's once it has more pipes than a table's header being typed. A fence's
        code line past `_highlight.LONG_LINE` grows the same way (`Fence.grow`)."""
        provisional, region = self._provisional, self.region
        if self._growing and isinstance(region, Fence):  # a long code line, shown plain
            fixed, rest = region.grow(added)
            return fixed, _ended(rest)
        if not self._growing or provisional is None or provisional[0] is not region:
            return None
        if isinstance(region, Whole) and not region.lines and "|" in added:
            return None  # (at most `_repair.WIDEST` times a line: then it is a paragraph's)
        fixed, rest = provisional[1].grow(added)
        return fixed, _ended(rest)

    def _partial_costly(self, region: Region, partial: str) -> bool:
        provisional = self._provisional
        if (
            provisional is not None
            and provisional[0] is region
            and partial.startswith(provisional[2])
        ):
            return True  # every measure only grows as the line does: it stays costly
        if isinstance(region, ParagraphRegion):
            return region.costly(partial)
        if isinstance(region, List | Table):  # (a list's whole lines are measured when added)
            return len(partial) > _repair.MAX_LINE or _repair.risky(partial)
        size = sum(len(line) + 1 for line in region.lines) + len(partial)
        return size > _repair.MAX_BLOCK or len(partial) > _repair.MAX_LINE or _repair.risky(partial)

    # -- splitting ---------------------------------------------------------------------------

    def _guarded(self, provisional: tuple[Region, Raw, str] | None = None) -> list[str]:
        """A region that grew by a line: still cheap to render again? (If it showed as
        escaped text while its last line was typed, that text is kept.)"""
        region = self.region
        if isinstance(region, ParagraphRegion | List) and region.spoiled:
            raw = provisional[1] if provisional and provisional[0] is region else None
            if raw is None or raw.lines != region.lines[:-1] or not raw.add(region.lines[-1]):
                raw = Raw(region.lines)
            self.region = raw
        return []

    def _split(self, lines: list[str]) -> list[str]:
        """Parse the open region again: the blocks before its last one are final."""
        since = len(self.changes)  # (the last block begins again from its lines)
        tokens = self._block_tokens(lines, region=True)
        blocks = top_level_blocks(tokens)
        last = blocks[-1][0] if blocks else 0
        frozen = []
        if last > 0:
            # The definitions of the blocks before the last one are settled.
            self._open = {label: ref for label, ref in self._open.items() if ref["map"][0] >= last}
            region = self.region
            if region is not None and len(region.lines) == last and region.settled():
                frozen.append(self._final(region))
            else:
                frozen.append(self._final(self._classify(lines[:last])))
            lines, self._since = lines[last:], since
        self.region = self._classify(lines, region=True)
        return [html for html in frozen if html]

    def _block_tokens(self, lines: list[str], *, region: bool = False) -> list[Token]:
        """Block tokens of `lines`. With `region` (the open region from its first line),
        the definitions they hold replace those its last parse found; otherwise the
        definitions found are not kept."""
        tokens: list[Token] = []
        text = "\n".join(lines) + "\n"
        if not region:
            self.md.block.parse(text, self.md, {"references": _Definitions(self.env)}, tokens)
            return tokens
        found = _Unsettled(self.env.setdefault("references", {}), self._open)
        self.md.block.parse(text, self.md, {"references": found}, tokens)
        self._settle(dict(found))
        return tokens

    def _settle(self, found: dict[str, Any]) -> None:
        """The open region's definitions are now `found`: record what changed."""
        references = self.env["references"]
        for label in self._open.keys() - found.keys():
            del references[label]
            self._change(label)
        for label, ref in found.items():
            old = references.get(label) if label in self._open else None
            if old is None or (old["href"], old["title"]) != (ref["href"], ref["title"]):
                self._change(label)
            # Its line map as a tuple: a dict of strings and tuples of numbers is left
            # untracked by the garbage collector (a stream may keep 50,000 of them).
            ref["map"] = tuple(ref["map"])
            references[label] = ref
        self._open = found

    def _change(self, label: str) -> None:
        version = len(self.changes)
        self.changes.append(label)
        if self._used.get(label, version + 1) <= version:
            self.stale.add(label)
        self._changed[label] = version

    def _classify(self, lines: list[str], *, region: bool = False) -> Region:
        """What builds the HTML of a region that starts a top-level block."""
        first = lines[0]
        opener = FENCE_OPEN.match(first)
        # A backtick fence's info string has no backtick (https://spec.commonmark.org/0.31.2/#fenced-code-blocks).
        if opener and (opener.group(2)[0] != "`" or "`" not in opener.group(3)):
            fence = Fence(opener, lines)
            if len(fence.lines) == len(lines):
                return fence
        if PARAGRAPH_START.match(first) and paragraph_lines(lines):
            paragraph = ParagraphRegion(self, lines)  # measured by its own guard, line by line
            return Raw(lines) if paragraph.spoiled else paragraph
        # Tables and lists are measured by the row or item rendered again, not whole.
        cheap = len(lines) <= 2 or not self._costly(lines)
        tokens = self._block_tokens(lines, region=region) if cheap else []
        if not tokens and len(lines) > 2:
            tokens = self._block_tokens(lines[:2])  # (a table or list too big to parse again)
            tokens = tokens if tokens and tokens[0].type in _GROWING else []
            if tokens:
                tokens = self._block_tokens(lines, region=region)
        if len(top_level_blocks(tokens)) == 1 and tokens:
            kind = tokens[0].type
            if kind == "table_open" and len(lines) >= 2:
                table = self._table(lines)
                if table is not None:
                    return table
            if kind in ("bullet_list_open", "ordered_list_open") and all(map(str.strip, lines)):
                marker = tokens[0].markup
                listed = List(self, lines, marker)
                if len(listed.lines) == len(lines):
                    return Raw(lines) if listed.spoiled else listed
        if self._costly(lines):
            return Raw(lines)
        return Whole(self, lines)

    def _table(self, lines: list[str]) -> Table | None:
        tokens = self.parse(f"{lines[0]}\n{lines[1]}\n")
        parts = Table.parts(self.render_tokens(tokens))
        if parts is None:
            return None
        table = Table(self, lines[:2], parts[0], [])
        for line in lines[2:]:
            if not table.add(line):
                return None
        return table

    def _costly(self, lines: list[str]) -> bool:
        guard = _repair.Guard()
        for line in lines:
            guard.feed(line + "\n")
            guard.line(line, (len(line) - len(line.lstrip(" "))) // 2)
        if guard.risky or max(map(len, lines)) > _repair.MAX_LINE:
            return True
        return guard.size > _repair.MAX_BLOCK or len(lines) > _repair.MAX_LINES

    def _final(self, region: Region) -> str:
        html = _ended(region.html(final=True))
        if html and self.finals is not None:
            source, version = "\n".join(region.lines), self._since
            labels = _labels(source)
            self.finals.append((source, version, labels))
            for label in labels:
                if self._changed.get(label, -1) >= version:
                    self.stale.add(label)
                if self._used.get(label, version + 1) > version:
                    self._used[label] = version
        return html


_GROUPED = 2_000  # a block this small renders as the engine renders it whole
_GROUP = 8_000  # source rendered in one call of the engine
_DELIMITERS = _repair.DELIMITER_LIMIT


def _delimiters(lines: list[str]) -> int:
    return sum(line.count("*") + line.count("_") + line.count("~") for line in lines)


def _heads(tokens: list[Token]) -> list[tuple[int, int]]:
    """Where each top-level block starts: (its first line, its first token)."""
    return [
        (token.map[0], index)
        for index, token in enumerate(tokens)
        if token.level == 0 and token.nesting >= 0 and token.map is not None
    ]


def _plain_small(lines: list[str], size: int) -> bool:
    """A block under every measure of `Machine._costly` and `_DELIMITERS`, known without
    taking them: too short to reach any limit, and no line starts with what nests."""
    return size <= _SMALL and all(not line or line[0] not in _NESTS for line in lines)


_SEEN = 256  # characters of a block that may render as it did before
_SEEN_BLOCKS = 4_096  # blocks remembered
_SMALL = 128  # characters: brackets cost at most 128 ** 2 of `_repair.BRACKET_BUDGET`
_NESTS = " >-+*0123456789"  # a line may start a quote or list (`_repair.Guard.line`)


_GROWING = ("table_open", "bullet_list_open", "ordered_list_open")


@functools.cache
def _inline_rules(md: MarkdownIt) -> list[Any]:
    """The engine's core rules after its block rules (inline, then ours)."""
    names = md.core.ruler.get_active_rules()
    rules = md.core.ruler.getRules("")
    return [rule for name, rule in zip(names, rules, strict=True) if name not in _BLOCK_RULES]


_BLOCK_RULES = ("normalize", "block")
# The regions whose live line shows as escaped text while it is too costly to render at
# each update (a fence's code line is lexed from near its end instead).
_MEASURED = (Whole, ParagraphRegion, List, Table)


# A block as it froze: its source (its lines joined by "\n"), the definitions' version
# when it began (what its HTML may have been rendered with), and the normalized labels it
# may use. A plain tuple of strings and numbers: the garbage collector stops tracking it
# after its first collection, so a stream of 100,000 blocks gives a full collection
# nothing of theirs to walk (a NamedTuple, a list and a frozenset each were 95-111 ms
# appends at 50,000 definitions).
Final = tuple[str, int, tuple[str, ...]]


# A link label: up to 999 characters, no unescaped bracket
# (https://spec.commonmark.org/0.31.2/#link-label). Each bracketed run may be the label of
# a full, collapsed or shortcut reference link; more is looked up than is used.
_LABEL = re.compile(r"\[((?:[^\[\]\\]|\\.){1,999})\]", re.DOTALL)


def _labels(source: str) -> tuple[str, ...]:
    """The labels a block's source may use, normalized as the engine matches them
    (https://spec.commonmark.org/0.31.2/#matches)."""
    if "]" not in source:
        return ()
    runs = set(_LABEL.findall(source))  # ("[ (](" * 80_000: one run, normalized once)
    return tuple({label for run in runs if (label := normalizeReference(run))})


class _Unsettled(dict[str, Any]):
    """What a parse of the open region writes definitions to: it finds the settled
    definitions (first wins, https://spec.commonmark.org/0.31.2/#link-reference-definitions)
    but not the ones an earlier parse of the same region found."""

    def __init__(self, references: dict[str, Any], unsettled: dict[str, Any]) -> None:
        super().__init__()
        self._settled, self._unsettled = references, unsettled

    def __contains__(self, label: object) -> bool:
        return dict.__contains__(self, label) or (
            label in self._settled and label not in self._unsettled
        )


class _Definitions(dict[str, Any]):
    """The definitions of whole lines (`env["references"]`, read-only) under those a
    render of some piece of text finds itself, which go when it ends."""

    def __init__(self, env: dict[str, Any]) -> None:
        super().__init__()
        self._known: dict[str, Any] = env.setdefault("references", {})

    def __contains__(self, label: object) -> bool:
        return dict.__contains__(self, label) or label in self._known

    def get(self, label: str, default: Any = None) -> Any:
        return dict.get(self, label, self._known.get(label, default))


def _ended(block_html: str) -> str:
    """Blocks end with a line break, as the engine renders them."""
    return block_html + "\n" if block_html else ""
