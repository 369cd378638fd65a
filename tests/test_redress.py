"""Model output cannot take the host page's look, hide a link's target or smuggle controls.

Classes are an allowlist of what the renderer emits, element by element; the browser
check in tests/browser/test_redress_browser.py shows the overlay this prevents.
"""

from __future__ import annotations

import re

import pytest

from streamchat.render import MarkdownStream, render_markdown

CLASS = re.compile(r'class="([^"]*)"')


def classes(html: str) -> set[str]:
    return {name for value in CLASS.findall(html) for name in value.split()}


@pytest.mark.parametrize(
    "header",
    [
        "{.text .jp-Dialog .jp-ThemedContainer}",
        "{.python .lm-Widget .jp-mod-dark #id style='position:fixed'}",
        "{.k .kn .n-Magic .streamchat-send .language-x}",
        "text .jp-Dialog",
    ],
)
def test_fence_headers_cannot_add_classes(header: str) -> None:
    html = render_markdown(f"```{header}\nimport os\n```")
    found = classes(html)
    assert not {name for name in found if name.startswith(("jp-", "lm-", "streamchat-send"))}
    assert "streamchat-code" in found
    assert len([name for name in found if name.startswith("language-")]) <= 1
    assert "style" not in html and 'id="' not in html


def test_the_renderers_own_classes_stay() -> None:
    html = render_markdown("```python\nimport os  # hi\n```\n\n- [x] done\n- [ ] not yet\n")
    assert {"language-python", "streamchat-code", "kn", "nn", "c1", "task-list"} <= classes(html)
    assert "task-list-item" in classes(html)


def test_pygments_classes_only_on_spans() -> None:
    html = render_markdown("```{.k .s2}\nx\n```")
    div = re.search(r'<div class="([^"]*)"', html)
    assert div is not None
    assert not {"k", "s2"} & set(div.group(1).split())
    assert "streamchat-code" in div.group(1).split()


@pytest.mark.parametrize(
    ("markdown", "note"),
    [
        ("[https://bank.example/login](https://evil.example/x)", "(evil.example)"),
        ("[bank.example](https://evil.example)", "(evil.example)"),
        ("[www.bank.example](https://user@evil.example:8443/)", "(evil.example)"),
    ],
)
def test_a_link_text_naming_another_host_shows_the_real_one(markdown: str, note: str) -> None:
    html = render_markdown(markdown)
    assert f'<span class="streamchat-link-host"> {note}</span>' in html


@pytest.mark.parametrize(
    "markdown",
    [
        "[https://bank.example/login](https://bank.example/other)",
        "[click here](https://evil.example)",
        "[README.md](https://git.example/x/README.md)",
        "https://bank.example/auto",
        "[BANK.example](https://bank.example.)",
    ],
)
def test_honest_links_get_no_note(markdown: str) -> None:
    assert "streamchat-link-host" not in render_markdown(markdown)


def test_allowed_images_send_no_referrer() -> None:
    html = render_markdown("![chart](https://img.example/c.png)", allow_images=True)
    assert 'referrerpolicy="no-referrer"' in html
    assert "<img" not in render_markdown("![chart](https://img.example/c.png)")


def test_code_and_text_carry_no_control_characters() -> None:
    source = (
        "Hi\x1b]0;title\x07 there\r\n```bash\necho \x1b]52;c;cm0=\x07ok\x1b[2K\x9b31m\x00\n```\n"
    )
    for html in (render_markdown(source), streamed(source)):
        assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", html), html
        assert "title there" in html and "ok" in html  # the printable rest stays


def streamed(source: str) -> str:
    stream = MarkdownStream()
    for index in range(0, len(source), 3):
        stream.append(source[index : index + 3])
    stream.finish()
    return stream.html
