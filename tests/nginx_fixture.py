"""A real nginx on 127.0.0.1 in front of a loopback upstream, for the doctor's tests.

Everything nginx writes (pid, temp files, logs) stays in a temporary directory, so
the tests need no setup beyond the nginx binary. The recommended configuration is
read from docs/nginx.md itself, so the page and the test cannot drift apart.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

from loopback import free_port, wait_until

DOCS = Path(__file__).parent.parent / "docs" / "nginx.md"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# The upstream address and the listen line as docs/nginx.md writes them.
DOCS_UPSTREAM = "127.0.0.1:8000"
DOCS_LISTEN = "listen 80;"


def nginx_available() -> bool:
    return os.access(NGINX, os.X_OK)


def recommended_config() -> str:
    """The ```nginx block of docs/nginx.md: an `upstream` and a `server`, http-level."""
    found = re.findall(r"```nginx\n(.*?)```", DOCS.read_text(), re.S)
    assert len(found) == 1, "docs/nginx.md must hold exactly one ```nginx block"
    return found[0]


def simple_config(location: str = "", http: str = "") -> str:
    """A server block proxying everything to the docs' upstream address, nginx defaults
    otherwise, with `location` directives added to the location and `http` ones around."""
    return (
        f"{http}\nserver {{\n    {DOCS_LISTEN}\n"
        f"    location / {{\n        proxy_pass http://{DOCS_UPSTREAM};\n        {location}\n"
        "    }\n}\n"
    )


class Nginx:
    """nginx run in the foreground (`daemon off`) with an http-level config snippet."""

    def __init__(
        self, directory: Path, snippet: str, upstream_port: int, listen_options: str = ""
    ) -> None:
        """`listen_options` go on the listen line: "ssl http2" serves https over HTTP/2."""
        for placeholder in (DOCS_UPSTREAM, DOCS_LISTEN):
            assert snippet.count(placeholder) == 1, f"config must contain {placeholder!r} once"
        self.port = free_port()
        scheme = "https" if "ssl" in listen_options.split() else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._directory = directory
        snippet = snippet.replace(DOCS_UPSTREAM, f"127.0.0.1:{upstream_port}")
        listen = " ".join(filter(None, (f"listen 127.0.0.1:{self.port}", listen_options)))
        snippet = snippet.replace(DOCS_LISTEN, listen + ";")
        (directory / "nginx.conf").write_text(_main_config(directory, snippet))
        self._log = directory / "stderr.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    NGINX,
                    "-e", "stderr",
                    "-p", str(self._directory),
                    "-c", str(self._directory / "nginx.conf"),
                    "-g", f"daemon off; pid {self._directory / 'nginx.pid'};",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )  # fmt: skip
        try:
            wait_until(self._accepts)
        except AssertionError:
            self.stop()
            raise AssertionError(f"nginx did not start: {self.log()}") from None
        return self

    def _accepts(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"nginx exited: {self.log()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def log(self) -> str:
        return self._log.read_text(errors="replace")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def _main_config(directory: Path, snippet: str) -> str:
    temp = "\n".join(
        f"    {name}_temp_path {directory / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx's workers would switch to an unprivileged user that cannot
    # write to the test's private temporary directory.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\nerror_log stderr;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n{temp}\n    access_log off;\n{snippet}\n}}\n"
    )
