"""Record the tapes in this folder from the real servers (tests/servers/real.py).

    PYTHONPATH=src python tests/tapes/record_real.py

The tests replay them offline (`tests/test_tape.py::test_the_recorded_tapes_replay`):
a real model's stream, with its real timing, for tests that have no server.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from streamchat.widget import StreamChat  # noqa: E402

from servers import real  # noqa: E402

PROMPTS = ("Write a haiku about rivers.", "Now list three rivers in a Markdown table.")


def main() -> None:
    problem = real.missing_llama()
    if problem:
        raise SystemExit(problem)
    with tempfile.TemporaryDirectory() as logs, real.start_llama_server(Path(logs)) as llama:
        chat = StreamChat(llama.base_url + "/v1/chat/completions", speed=0, model="gemma-3-270m")
        for prompt in PROMPTS:
            chat.ask(prompt)
            if not chat.wait(120):
                raise SystemExit("no answer in 120 s")
        chat.save(HERE / "llama-server-gemma-3-270m.tape.json")
        chat.close()


if __name__ == "__main__":
    main()
