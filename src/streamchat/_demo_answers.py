"""What the demo server answers: one Markdown answer per topic, picked by the prompt.

Each preset prompt of the demo notebook lands on its own topic, so every preset shows
something different (code, a table, Chinese, emoji, math, a reasoning trace); any
other prompt gets the showcase, which exercises everything the renderer does at once
but math: a terminal shows LaTeX as its source, so math has its own topic.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

__all__ = ["SHOWCASE", "TOPICS", "Topic", "topic_for"]


@dataclass(frozen=True)
class Topic:
    """An answer and the words of a prompt that call for it."""

    name: str
    # Lower-case words (or, for Han script, a substring) that pick this topic.
    words: tuple[str, ...]
    answer: str
    # Sent first, as `reasoning_content` deltas, like DeepSeek, Qwen and llama.cpp do.
    reasoning: str = ""


SHOWCASE = Topic(
    "showcase",
    (),
    """\
## Streaming, explained 🚀

You asked: *{prompt}*. Here is an answer that shows **everything** the bubble can render,
typed out token by token like a real model.

Why stream at all?
- The first words arrive in **milliseconds**, not after the whole answer is written
- You can stop a wrong answer early
  - and save tokens
  - and time ⏱️
- ~~Waiting for the full reply~~ is a thing of the past

### A comparison

| Transport | Direction | Fits LLM chat |
|-----------|-----------|:-------------:|
| SSE | server → client | ✅ |
| WebSocket | both ways | 🆗 |
| Long polling | emulated | ❌ |

### Some code

```python
async def stream(url: str) -> None:
    async with httpx.AsyncClient() as client:
        async with client.stream("POST", url, json={{"stream": True}}) as response:
            async for chunk in response.aiter_raw():
                print(chunk.decode("utf-8"), end="")
```

> A proxy that buffers turns a stream into one late burst:
> send `X-Accel-Buffering: no` and turn gzip off for `text/event-stream`.

### 中文也可以 🇨🇳

流式输出（打字机效果）让用户在第一时间看到回答，而不是等待几千字全部生成。多字节字符在分块之间被切开时，也能正确解码：你好，世界！👨‍👩‍👧‍👦

1. Decode bytes incrementally
2. Split events on blank lines
3. Reveal the text at a steady pace

- [x] Render Markdown live
- [ ] Leave the cursor behind

Read more at https://html.spec.whatwg.org/multipage/server-sent-events.html — that's all! 🎉
""",
)

WHY_STREAM = Topic(
    "why",
    ("why", "benefits"),
    """\
## Why stream LLM answers? ⚡

A model writes its answer **one token at a time**. Streaming shows each token as it
is written instead of waiting for the last one:

1. **Time to first token** is what a person feels: ~0.3 s instead of 20 s
2. A wrong answer can be **stopped** after one sentence, saving tokens 💸
3. Long answers stay readable, because the eye follows the text as it grows

What it costs:
- a connection held open for the whole answer
- a renderer that copes with *half-written* Markdown: an open `**`, a table
  with one row, a code fence still waiting for its end
- proxies that must not buffer (`X-Accel-Buffering: no`) 🧱

> Reading speed is 4 to 8 words a second; a fast model writes 100 tokens a second.
> The typewriter smooths bursts into a steady pace you can set with **Speed**.

Move the *Speed* slider while this types: the server sends far faster than any
setting, so the pace you see is the one you choose. 🐢 → 🐇
""",
)

CODE = Topic(
    "code",
    ("code", "python", "function", "example"),
    """\
Here is a small **async client** that prints a streamed answer as it arrives:

```python
import httpx
from httpx_sse import aconnect_sse


async def ask(url: str, prompt: str) -> str:
    \"\"\"Stream one answer; return it whole.\"\"\"
    body = {"messages": [{"role": "user", "content": prompt}], "stream": True}
    parts: list[str] = []
    async with httpx.AsyncClient(timeout=None) as client:
        async with aconnect_sse(client, "POST", url, json=body) as events:
            async for event in events.aiter_sse():
                if event.data == "[DONE]":
                    break
                delta = event.json()["choices"][0]["delta"]
                parts.append(delta.get("content") or "")
                print(parts[-1], end="", flush=True)
    return "".join(parts)
```

And the same request from a shell, with `curl -N` so nothing is buffered:

```bash
curl -N http://127.0.0.1:8008/v1/chat/completions \\
  -H 'content-type: application/json' \\
  -d '{"stream": true, "messages": [{"role": "user", "content": "hi"}]}'
```

Inline code works too: `aiter_sse()` yields one `ServerSentEvent` per event. 🐍
""",
)

TABLE = Topic(
    "table",
    ("table", "compare", "comparison"),
    """\
### Streaming front ends compared

| Tool | Live Markdown | Typewriter pace | Stop | Works offline |
|:-----|:-------------:|:---------------:|:----:|--------------:|
| streamchat | ✅ | ✅ adjustable | ✅ | ✅ |
| raw `print()` | ❌ | ❌ | ⚠️ interrupt | ✅ |
| chat web app | ✅ | ❌ | ✅ | ❌ |

| Rate | Feels like |
|-----:|:-----------|
| 20 chars/s | someone typing 🧑‍💻 |
| 120 chars/s | fast reading |
| 600 chars/s | a wall of text |

Tables stream **row by row**: a half-written row waits until its cells are known.
""",
)

CHINESE = Topic(
    "chinese",
    ("中文", "表格", "代码", "你好", "汉字"),
    """\
## 表格和代码：当然可以！🐼

流式输出时，**中文字符**可能在网络分块之间被切开；解码器按字节增量解码，
所以你看到的永远是完整的汉字。

| 功能 | 说明 | 状态 |
|------|------|:----:|
| 增量解码 | UTF-8 字节跨块拼接 | ✅ |
| 实时渲染 | Markdown 边收边显示 | ✅ |
| 打字机效果 | 速度可调 | ✅ |

```python
# 逐字显示一句话
for 字 in "你好，世界！":
    print(字, end="", flush=True)
```

1. 先显示第一个字
2. 再按设定的速度继续
3. 随时可以**停止** ⏹️

表情符号也没问题：👨‍👩‍👧‍👦 🇨🇳 🎉
""",
)

EMOJI = Topic(
    "emoji",
    ("emoji", "emojis", "unicode"),
    """\
### Grapheme clusters, not code points 🧩

The typewriter reveals whole *grapheme clusters*, so none of these is ever shown half-built:

- Family: 👨‍👩‍👧‍👦 (7 code points, one picture)
- Flags: 🇯🇵 🇧🇷 🇺🇦 (two regional indicators each)
- Skin tones: 👋🏽 👍🏿
- Keycaps: 1️⃣ 2️⃣ 3️⃣
- Combining marks: é = e + ◌́, ñ, Å

| Text | Code points | Graphemes |
|------|------------:|----------:|
| `👨‍👩‍👧‍👦` | 7 | 1 |
| `🇺🇦` | 2 | 1 |
| `é` | 2 | 1 |
""",
)

MATH = Topic(
    "math",
    ("math", "maths", "formula", "formulas", "equation", "equations", "latex"),
    r"""### Math, typeset as it streams 🧮

Inline math sits in the sentence: an answer of $n$ tokens at $r$ tokens per second
takes \(t = n / r\) seconds, and the first token arrives after $t_0 \approx 0.3$ s.

A display formula gets its own line:

$$
\sum_{k=1}^{n} k = \frac{n(n+1)}{2}
$$

\[
e^{i\pi} + 1 = 0
\]

| Quantity | Formula |
|----------|---------|
| time to read | $w / v$ |
| tokens per word | $\approx 1.3$ |

Dollar amounts stay text: a plan costs $5 a month or $20 a year. A formula still being
typed shows as its source until its closing delimiter arrives. ✏️
""",
)

REASONING = Topic(
    "reasoning",
    ("think", "reason", "reasoning", "step", "puzzle"),
    """\
**Answer: 9 sheep are left.** 🐑

"All but 9 run away" means that 9 stay. The 17 is there to mislead: it is the
number you start with, not the one you subtract from.

- Start: 17 sheep
- Run away: all *except* 9, so 8
- Left: **9**
""",
    reasoning="""\
The question: a farmer has 17 sheep, all but 9 run away; how many are left?

Careless reading says 17 - 9 = 8. But "all but 9" names the ones that *stay*.

So 9 are left, and 8 ran away. Check: 9 + 8 = 17. ✔
""",
)

# Any prompt that names none of these gets the showcase.
TOPICS: tuple[Topic, ...] = (REASONING, WHY_STREAM, CODE, TABLE, EMOJI, CHINESE, MATH)

_WORD = regex.compile(r"\p{L}+", regex.V1)


def topic_for(prompt: str) -> Topic:
    """The first topic whose words appear in the prompt (whole words, any case)."""
    lowered = prompt.casefold()
    words = set(_WORD.findall(lowered))
    for topic in TOPICS:
        if any(word in words or (not word.isascii() and word in lowered) for word in topic.words):
            return topic
    return SHOWCASE
