"""A small HTTP client for vLLM's OpenAI-compatible server: one connection pool, bounded
retries, named errors.

Transient failures (connection refused or reset, timeouts, 5xx) are retried with exponential
backoff, ``max_retries`` times; a 4xx is the caller's mistake and is not. Sync calls on a
thread-safe pool: the graph's nodes are synchronous, and concurrency comes from a thread pool
in the policy, which works the same under ``invoke`` and under ``ainvoke``'s executor.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from langchain_darwin.served.errors import RequestFailed, ServerUnreachable

#: Seconds a request may take when the caller sets no timeout: a long answer of a large
#: model on a busy server takes minutes, a dead one should not hang a search forever.
DEFAULT_TIMEOUT = 300.0
DEFAULT_MAX_RETRIES = 2
#: Seconds to connect: a server is there or it is not; this bounds the wait on a black hole.
CONNECT_TIMEOUT = 10.0
BACKOFF = 0.5
MAX_BACKOFF = 8.0


def normalize_base_url(base_url: str) -> str:
    """``http://h:p``, ``http://h:p/v1`` and ``http://h:p/v1/`` all name the server root
    ``http://h:p`` (vLLM serves ``/health``, ``/tokenize`` there and the OpenAI API under
    ``/v1``)."""
    url = base_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


class ServerClient:
    """Requests to one vLLM server. ``path`` arguments are relative to the server root."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        pool_size: int = 16,
    ) -> None:
        self.root = normalize_base_url(base_url)
        self.timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        self.max_retries = DEFAULT_MAX_RETRIES if max_retries is None else int(max_retries)
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
        self._http = httpx.Client(
            base_url=self.root,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, CONNECT_TIMEOUT)),
            limits=limits,
        )

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        return self.request("POST", path, payload)

    def request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        """The JSON answer; retries transient failures, then raises a named error."""
        what = f"{method} {self.root}{path}"
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._http.request(method, path, json=payload)
            except (httpx.ConnectError, httpx.ConnectTimeout) as err:
                if last:
                    raise ServerUnreachable(
                        f"no server answers at {self.root} ({type(err).__name__}: {err}); "
                        f"tried {attempt + 1} time(s). Is vLLM running there?"
                    ) from err
            except httpx.TimeoutException as err:
                if last:
                    raise RequestFailed(
                        f"{what} timed out (timeout={self.timeout:g} s) {self._tries(attempt)}"
                    ) from err
            except httpx.TransportError as err:  # reset, closed mid-answer: the server died
                if last:
                    raise RequestFailed(
                        f"{what} failed ({type(err).__name__}: {err}) {self._tries(attempt)}"
                    ) from err
            else:
                if response.status_code < 400:
                    return response.json()
                if response.status_code < 500:  # the request is wrong: retrying won't help
                    raise RequestFailed(
                        f"{what} was refused ({response.status_code}): {_message(response)}"
                    )
                if last:
                    raise RequestFailed(
                        f"{what} returned {response.status_code} {self._tries(attempt)}: "
                        f"{_message(response)}"
                    )
            time.sleep(min(BACKOFF * 2**attempt, MAX_BACKOFF))
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt

    def _tries(self, attempt: int) -> str:
        return f"after {attempt} retr{'y' if attempt == 1 else 'ies'}"

    def close(self) -> None:
        self._http.close()


def _message(response: httpx.Response) -> str:
    """The server's error message (vLLM: ``{"error": {"message": ...}}``), else the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:500]
        if "detail" in body:
            return str(body["detail"])[:500]
    return str(body)[:500]
