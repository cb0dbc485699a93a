"""Debian's nginx running the project's docker/nginx.conf, in front of a test's gateway.

Only what the test environment needs is changed: the upstream (compose's `api:8000`) becomes
the test gateway's address and the listening port a free one; pid and temporary files go to
the test's directory. Everything else (timeouts, limits, buffering) is the file as shipped.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.support.processes import REPO_ROOT
from tests.support.waiting import wait_until

__all__ = ["NginxProxy", "nginx_binary"]

CONFIG = REPO_ROOT / "docker" / "nginx.conf"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


class NginxProxy:
    def __init__(self, workdir: Path, upstream: str, port: int | None = None) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
        self.binary = binary
        self.upstream = upstream
        self.workdir = workdir
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        text = CONFIG.read_text()
        assert "server api:8000;" in text and "listen 8080;" in text
        text = text.replace("server api:8000;", f"server {upstream};")
        text = text.replace("listen 8080;", f"listen 127.0.0.1:{self.port};")
        # Temporary files where this test may write them, not in the system's directories.
        temp = "\n".join(
            f"    {kind}_temp_path {workdir / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        text = text.replace("http {\n", "http {\n" + temp + "\n", 1)
        self.config = workdir / "nginx.conf"
        self.config.write_text(text)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NginxProxy:
        with (self.workdir / "nginx.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "-c",
                    str(self.config),
                    "-p",
                    str(self.workdir),
                    "-g",
                    f"daemon off; pid {self.workdir / 'nginx.pid'};",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._answers, timeout=30, what=f"nginx on {self.port}", interval=0.1)
        return self

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"nginx exited:\n{self.log()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        path = self.workdir / "nginx.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None
