"""The README is a front page and docs/ holds the rest: both are checked against the code.

The README's first screen holds the picture, the install line and the two commands;
its commands are the Makefile's targets and `.ci/run` runs `make test`; every link
of the README and docs/ resolves (files and #anchors); every page of docs/ is
reachable from the README; and the snippets use the current API: they parse, import
only what `streamchat` exports, call only methods and keywords that exist, and run
only the CLI's commands and options.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import shlex
from pathlib import Path

import pytest

import streamchat
from streamchat import Lane, Race, StreamChat
from streamchat.cli import _parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
PICTURE = "docs/img/chat.png"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# What a snippet's variables stand for.
_OBJECTS = {"chat": StreamChat, "StreamChat": StreamChat, "race": Race, "replay": StreamChat}


def blocks(page: Path, language: str) -> list[str]:
    return [code for lang, code in _FENCE.findall(page.read_text("utf-8")) if lang == language]


def relative(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_first_screen_holds_the_picture_the_install_line_and_the_two_commands() -> None:
    """Above the README's first section, in its first 30 lines: what GitHub shows first."""
    text = README.read_text("utf-8")
    top = text[: text.index("\n## ")]
    assert top.count("\n") <= 30
    assert f"]({PICTURE})" in top
    shell = "\n".join(code for lang, code in _FENCE.findall(top) if lang == "sh")
    assert "pip install streamchat" in shell
    assert re.search(r"^make demo\b", shell, re.MULTILINE)
    assert re.search(r"^make test\b", shell, re.MULTILINE)
    assert "`make test-fast`" in top


def makefile_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text("utf-8")
    return set(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))


def test_every_make_command_in_the_readme_and_docs_is_a_target_and_ci_runs_make_test() -> None:
    """`make X` in backticks or at the start of a line of a shell block."""
    named = {
        target
        for page in PAGES
        for target in re.findall(r"(?:`|^)make ([\w-]+)", page.read_text("utf-8"), re.MULTILINE)
    }
    assert {"demo", "test", "test-fast", "picture"} <= named
    assert named <= makefile_targets()
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text("utf-8"), re.MULTILINE)


def test_the_picture_is_a_png_made_by_make_picture() -> None:
    data = (ROOT / PICTURE).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 1200 and height >= 800  # taken at twice the CSS pixels: sharp on GitHub
    makefile = (ROOT / "Makefile").read_text("utf-8")
    assert re.search(r"^picture:.*\n\t.*tools/readme_picture\.py$", makefile, re.MULTILINE)
    script = (ROOT / "tools" / "readme_picture.py").read_text("utf-8")
    assert '"docs" / "img" / "chat.png"' in script


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    text = re.sub(r"[`*_\[\]()]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text("utf-8"))
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_link_resolves(page: Path) -> None:
    text = _FENCE.sub("", page.read_text("utf-8"))
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not this repository's
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{relative(page)}: {target}"
        if anchor:
            assert anchor in anchors(resolved), f"{relative(page)}: {target}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    text = README.read_text("utf-8")
    assert [page for page in DOCS if f"](docs/{page.name}" not in text] == []


def python_snippets() -> list[tuple[str, str]]:
    return [(relative(page), code) for page in PAGES for code in blocks(page, "python")]


@pytest.mark.parametrize(("page", "code"), python_snippets())
def test_a_python_snippet_uses_the_current_api(page: str, code: str) -> None:
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "streamchat":
            assert {alias.name for alias in node.names} <= set(streamchat.__all__)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = _OBJECTS.get(node.value.id)
            assert owner is None or hasattr(owner, node.attr), f"{node.value.id}.{node.attr}"
        elif isinstance(node, ast.Call):
            check_keywords(node)


def check_keywords(call: ast.Call) -> None:
    """A call of StreamChat, Race, Lane or one of their methods passes only their keywords."""
    function = call.func
    if isinstance(function, ast.Name) and function.id in {"StreamChat", "Race", "Lane"}:
        target = {"StreamChat": StreamChat, "Race": Race, "Lane": Lane}[function.id]
    elif (
        isinstance(function, ast.Attribute)
        and isinstance(function.value, ast.Name)
        and function.value.id in _OBJECTS
    ):
        target = getattr(_OBJECTS[function.value.id], function.attr)
    else:
        return
    parameters = inspect.signature(target).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for keyword in call.keywords:
        assert keyword.arg is None or takes_any or keyword.arg in parameters, keyword.arg


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def cli_lines() -> list[tuple[str, str]]:
    return [
        (relative(page), line.strip())
        for page in PAGES
        for code in blocks(page, "sh")
        for command in code.replace("\\\n", " ").splitlines()
        for line in command.split("&&")
        if line.strip().startswith("streamchat ")
    ]


@pytest.mark.parametrize(("page", "line"), cli_lines())
def test_a_cli_example_names_a_real_command_and_its_options(page: str, line: str) -> None:
    words = shlex.split(line.split("#")[0].replace("[", " ").replace("]", " "))
    command = subcommands()[words[1]]
    options = {word.split("=")[0] for word in words[2:] if word.startswith("--")}
    assert options <= set(command._option_string_actions), options
