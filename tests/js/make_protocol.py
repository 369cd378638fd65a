"""Write the protocol block of src/streamchat/static/widget.js from streamchat/_messages.py.

The Python module declares the protocol (messages, patch ops, status words, turns,
stats, tool calls); widget.js holds a generated copy between its two marker lines:
constants the code matches with, and JSDoc typedefs. anywidget loads `_esm` as one file,
so the copy is inline rather than a module of its own.

Run it after changing `_messages.py`: `python tests/js/make_protocol.py` (or `make
protocol`); `--check` only says whether the block is up to date (tests/test_protocol.py
does the same).
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from streamchat import _messages
from streamchat.render import Patch

WIDGET_JS = Path(_messages.__file__).parent / "static" / "widget.js"
START = "// --- protocol: generated from streamchat/_messages.py; do not edit by hand ---"
END = "// --- end of protocol ---"
WIDTH = 100


def _constant_name(word: str) -> str:
    return re.sub(r"\W", "_", word).upper()


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def _docs() -> dict[str, str]:
    """The docstrings of the module's top-level names, aliases and constants included
    (a string right after an assignment documents it; Python keeps no such docstring)."""
    tree = ast.parse(Path(_messages.__file__).read_text(encoding="utf-8"))
    docs: dict[str, str] = {}
    body = tree.body
    for node, after in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.ClassDef):
            docs[node.name] = ast.get_docstring(node) or ""
        target = None
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            target = node.target.id
        if target and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[target] = inspect.cleandoc(str(after.value.value))
    return docs


# The module's type aliases: its words (Literal) and its unions (of messages, of turns).
WORDS = {
    name: value for name, value in vars(_messages).items() if typing.get_origin(value) is Literal
}
UNIONS = {
    name: value for name, value in vars(_messages).items() if isinstance(value, types.UnionType)
}


def js_type(hint: Any) -> str:
    """A Python type annotation of the protocol as a JSDoc type (aliases by their name)."""
    for name, alias in {**WORDS, **UNIONS}.items():
        if hint == alias:
            return name
    simple = {str: "string", int: "number", float: "number", bool: "boolean"}
    if hint in simple:
        return simple[hint]
    if hint is type(None):
        return "null"
    if hint is Any:
        return "*"
    if hint is Patch:
        return "PatchOp"
    if typing.is_typeddict(hint):
        return hint.__name__
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return " | ".join(json.dumps(value) for value in args)
    if origin in (Union, types.UnionType):
        return " | ".join(js_type(arg) for arg in args)
    if origin is list:
        inner = js_type(args[0])
        return f"{inner}[]" if re.fullmatch(r"\w+", inner) else f"Array<{inner}>"
    if origin is dict:
        return f"Object<string, {js_type(args[1])}>"
    raise TypeError(f"no JSDoc type for {hint!r}: say how in make_protocol.js_type")


def _comment(lines: list[str]) -> list[str]:
    return ["/**", *[f" * {line}".rstrip() for line in lines], " */"]


def _wrapped(text: str, indent: str = "") -> list[str]:
    out: list[str] = []
    for paragraph in text.split("\n\n"):
        out += textwrap.wrap(
            " ".join(paragraph.split()),
            WIDTH - 3 - len(indent),
            subsequent_indent=indent,
            break_on_hyphens=False,
        )
    return out


def _typedef(cls: type, doc: str) -> list[str]:
    hints = typing.get_type_hints(cls)
    optional = getattr(cls, "__optional_keys__", frozenset())
    lines = [*_wrapped(doc), f"@typedef {{object}} {cls.__name__}"]
    for name, hint in hints.items():
        key = f"[{name}]" if name in optional else name
        lines.append(f"@property {{{js_type(hint)}}} {key}")
    return _comment(lines)


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z_]\w*", key) else json.dumps(key)


def js_value(value: object, indent: str = "") -> str:
    """`value` as JavaScript source in the file's style: on one line when it fits, else an
    entry a line; keys unquoted where they are names."""
    if isinstance(value, dict):
        items = [f"{_key(key)}: {js_value(item, indent + '  ')}" for key, item in value.items()]
        brackets = "{ ", " }", "{", "}"
    elif isinstance(value, list):
        items = [js_value(item, indent + "  ") for item in value]
        brackets = "[", "]", "[", "]"
    else:
        return json.dumps(value)
    one_line = brackets[0] + ", ".join(items) + brackets[1]
    if len(indent) + len(one_line) <= WIDTH - 40:
        return one_line
    inner = "".join(f"{indent}  {item},\n" for item in items)
    return f"{brackets[2]}\n{inner}{indent}{brackets[3]}"


def _frozen(name: str, value: object, doc: str) -> list[str]:
    return [*_comment(_wrapped(doc)), f"export const {name} = Object.freeze({js_value(value)});"]


def _words(alias: str, doc: str) -> list[str]:
    """A Literal alias: its typedef, and its words as constants (`ROLE.USER`)."""
    words = typing.get_args(WORDS[alias])
    union = " | ".join(json.dumps(word) for word in words)
    lines = [*_wrapped(doc), f"@typedef {{{union}}} {alias}"]
    table = {_constant_name(word): word for word in words}
    return [*_comment(lines), f"export const {_snake(alias)} = Object.freeze({js_value(table)});"]


def _patch_op() -> list[str]:
    hints = typing.get_type_hints(Patch)
    shapes = []
    for name, wire in _messages.OPS.items():
        fields = "".join(f", {field}: {js_type(hints[field])}" for field in wire.fields)
        shapes.append(f'{{op: "{name}"{fields}}}')
    lines = [
        "A patch op (`render.Patch`); what each does: tests/patch_cases.json.",
        "@typedef {",
        *[f"  {shape}" + (" |" if i < len(shapes) - 1 else "") for i, shape in enumerate(shapes)],
        "} PatchOp",
        "@typedef {Array} PatchWire a PatchMessage as sent: [turn, part code, op...], each op",
        "  its code and its arguments (`OP_CODES`, `PART_CODES`)",
    ]
    return _comment(lines)


def generate() -> str:
    """The protocol block, markers included."""
    docs = _docs()
    out = [START]
    for alias in WORDS:
        out += _words(alias, docs[alias])
    order = typing.get_args(_messages.ChatStatus)
    live = [status for status in order if status in _messages.LIVE_STATUSES]
    out += _frozen("LIVE_STATUSES", live, docs["LIVE_STATUSES"])
    ops = {_constant_name(name): name for name in _messages.OPS}
    out += _frozen("OP", ops, "The patch ops by name.")
    codes = {wire.code: [name, list(wire.fields)] for name, wire in _messages.OPS.items()}
    out += _frozen("OP_CODES", codes, "Each op's code on the wire: its name and arguments.")
    parts = {code: part for part, code in _messages.PARTS.items()}
    out += _frozen("PART_CODES", parts, docs["PARTS"])
    out += _frozen("FRAME_KINDS", dict(_messages.FRAME_KINDS), docs["FRAME_KINDS"])
    out += [
        *_comment(_wrapped(docs["FRAME_MS"])),
        f"export const FRAME_MS = {_messages.FRAME_MS!r};",
    ]
    kernel = {_constant_name(kind): kind for kind in _messages.kernel_kinds()}
    out += _frozen("KERNEL_MESSAGE", kernel, "The kinds of message the kernel sends.")
    browser = {_constant_name(kind): kind for kind in _messages.browser_kinds()}
    out += _frozen("BROWSER_MESSAGE", browser, "The kinds of message a view sends.")
    out += _patch_op()
    for name, value in vars(_messages).items():
        if typing.is_typeddict(value) and value.__module__ == _messages.__name__:
            out += _typedef(value, docs[name])
    for name, value in UNIONS.items():
        members = " | ".join(js_type(member) for member in typing.get_args(value))
        out += _comment([*_wrapped(docs[name]), f"@typedef {{{members}}} {name}"])
    out.append(END)
    return "\n".join(out) + "\n"


def current(source: str) -> str:
    """The protocol block as widget.js holds it now."""
    start, end = source.index(START), source.index(END) + len(END) + 1
    return source[start:end]


def write() -> bool:
    """Rewrite the block in widget.js; True when it changed."""
    source = WIDGET_JS.read_text(encoding="utf-8")
    block = current(source)
    fresh = generate()
    if block == fresh:
        return False
    WIDGET_JS.write_text(source.replace(block, fresh), encoding="utf-8")
    return True


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        up_to_date = current(WIDGET_JS.read_text(encoding="utf-8")) == generate()
        print("up to date" if up_to_date else f"{WIDGET_JS} differs: run without --check")
        sys.exit(0 if up_to_date else 1)
    print(f"{WIDGET_JS}: {'rewritten' if write() else 'up to date'}")
