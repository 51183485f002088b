"""The DARWIN OpenAI-compatible server for tests: in this process on a real uvicorn (fast, for
unit tests on the tiny models), or as a ``darwin serve`` process (integration tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from langchain_darwin import DarwinChatModel
from langchain_darwin.openai_api import Searches, ServeSettings, create_app
from tests.servers import ROOT, Loopback, free_port


@contextmanager
def serving(chat: DarwinChatModel, check: str = "ready", **settings: Any) -> Iterator[str]:
    """``create_app`` over ``chat`` on a real uvicorn in a thread; yields the base URL
    (``http://127.0.0.1:PORT/v1``) once ``/{check}`` answers 200."""
    settings.setdefault("max_concurrent", 4)
    searches = Searches(chat.search_service, chat.config, settings["max_concurrent"])
    app = create_app(searches, ServeSettings(**settings))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    root = f"http://127.0.0.1:{port}"
    try:
        wait_ready(root, lambda: thread.is_alive(), check=check)
        yield f"{root}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_ready(root: str, alive: Any, timeout: float = 600, check: str = "ready") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the DARWIN server at {root} stopped while starting")
        try:
            if httpx.get(f"{root}/{check}", timeout=30).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the DARWIN server at {root} was not ready after {timeout:.0f} s")


def metric(base_url: str, name: str) -> float:
    """One unlabelled value of the server's /metrics."""
    text = httpx.get(base_url.removesuffix("/v1") + "/metrics").text
    for line in text.splitlines():
        if line.startswith(f"darwin_{name} "):
            return float(line.split()[1])
    raise KeyError(name)


class DarwinServer(Loopback):
    """``darwin serve ARGS`` as a process on a free loopback port, its log in ``log``."""

    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log = log
        self.args = [*args, "--port", str(self.port)]
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DarwinServer:
        command = [sys.executable, "-m", "langchain_darwin.cli", "serve", *self.args]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT
            )
        try:
            wait_ready(self.root, lambda: self.process is not None and self.process.poll() is None)
        except RuntimeError as err:
            self.stop()
            raise RuntimeError(f"{err}; log:\n{self.log.read_text()[-3000:]}") from None
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None
