"""The served policy engine: DARWIN's beams extended by a vLLM server over HTTP, in token ids.

Every row is its own ``/v1/completions`` request whose prompt is the row's full context as
token ids; the server's automatic prefix caching finds the part it already computed (the
prompt, the answer so far), so a period costs its new tokens, not a re-prefill. Rows go out
concurrently, so the server batches them. Each row draws with its own seed, derived from the
call's seed and the row's key: a fixed seed reproduces a search, and beams copied from one
donor still diverge after a replacement.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from langchain_darwin.policy.base import (
    ExtendOutcome,
    RowRequest,
    RowResult,
    Sampling,
    SearchCancelled,
)
from langchain_darwin.served.client import ServerClient
from langchain_darwin.served.errors import ContextWindowExceeded, RequestFailed
from langchain_darwin.served.startup import check_tokenizer, load_client_tokenizer, served_model

DEFAULT_CONCURRENCY = 16


class ServedSession:
    """A run's handle on the served engine. The KV cache lives on the server (prefix
    caching), so there is nothing to clear here; ``reuse_cache=False`` salts every call's
    requests with a fresh ``cache_salt``, so each period re-prefills its full context, the
    reference implementation's cost."""

    def __init__(self, reuse_cache: bool = True) -> None:
        self.reuse_cache = reuse_cache
        self.cancelled = threading.Event()

    def clear(self) -> None:
        """Nothing to free: cached prefixes belong to the server and age out there."""

    def cancel(self) -> None:
        """Send no further requests for this run; requests in flight finish first."""
        self.cancelled.set()

    def salt(self) -> str | None:
        return None if self.reuse_cache else secrets.token_urlsafe(32)


@dataclass
class _Done:
    result: RowResult
    prefilled: int
    decoded: int


def row_seed(seed: int, key: str, attempt: int = 0) -> int:
    """A per-row seed from (call seed, row key, continuation): stable across processes
    (unlike ``hash``), and within vLLM's int64 range."""
    digest = hashlib.sha256(f"{seed}/{key}/{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def completion_payload(
    model: str, prompt: list[int], max_tokens: int, sampling: Sampling, seed: int, n: int = 1
) -> dict[str, Any]:
    """A ``/v1/completions`` request continuing ``prompt`` (token ids) by ``max_tokens``
    tokens, ``n`` samples, drawn as ``sampling`` says with ``seed``. Every sampling field is
    set explicitly: otherwise the server applies the model's generation_config defaults
    (temperature, top_p, repetition penalty...). The rows of a search send one sample each;
    a plain Best-of-N sends ``n`` in one request (one prompt prefill)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    greedy = sampling.temperature <= 0
    return {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.0 if greedy else float(sampling.temperature),
        "top_k": -1 if greedy or sampling.top_k <= 0 else int(sampling.top_k),
        "top_p": 1.0,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "seed": seed,
        "ignore_eos": bool(sampling.ignore_eos),
        "return_token_ids": True,
        "n": n,
    }


class ServedPolicy:
    """A model served by vLLM's OpenAI-compatible server, as DARWIN's policy engine.

    At start-up it checks that the server answers, that it serves ``model``, and that the
    client's tokenizer (``tokenizer``: a folder or a transformers fast tokenizer; by default
    the folder the server loaded, when this machine can read it) encodes a probe to the same
    ids as the server's ``/tokenize``. ``context_window`` is the server's ``max_model_len``.
    Thread-safe: per-run state lives in sessions.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        *,
        tokenizer: str | os.PathLike[str] | Any | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.model = model
        self.client = ServerClient(base_url, api_key, timeout, max_retries, max_concurrency)
        card = served_model(self.client, model)
        self.context_window: int | None = card.get("max_model_len")
        self.tokenizer = load_client_tokenizer(tokenizer, card)
        check_tokenizer(self.client, model, self.tokenizer)
        self.eos_token_ids = self.tokenizer.eos_token_ids
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="darwin-served")

    @property
    def line_break_ids(self) -> frozenset[int]:
        return self.tokenizer.line_break_ids

    # -- text <-> tokens -------------------------------------------------------------------

    def render(
        self, conversation: Sequence[Mapping[str, str]], **template_kwargs: object
    ) -> list[int]:
        text = self.tokenizer.render_chat(conversation, True, **template_kwargs)
        return self.tokenizer.encode(text)

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def new_session(self, reuse_cache: bool = True) -> ServedSession:
        return ServedSession(reuse_cache=reuse_cache)

    # -- decoding --------------------------------------------------------------------------

    def extend(
        self,
        session: ServedSession,
        rows: Mapping[str, RowRequest],
        sampling: Sampling,
        *,
        commit: bool = True,
    ) -> ExtendOutcome:
        """Extend every row by up to ``max_new`` tokens, one concurrent request per row.

        ``commit`` changes nothing here: the server keeps no per-run state beyond its prefix
        cache, so a look-ahead is an ordinary call. A background row gets at most the largest
        foreground budget (in process it stops with the last foreground row; here it runs in
        parallel, so that bounds the call's time the same way).

        ``Work.prefilled`` is what the server computed: ``usage.prompt_tokens`` minus
        ``prompt_tokens_details.cached_tokens`` (the server reports it when started with
        ``--enable-prompt-tokens-details``; otherwise the whole prompt is counted, an upper
        bound). ``Work.decoded`` is ``usage.completion_tokens`` (an end-of-sequence step
        counts, as in process).
        """
        outcome = ExtendOutcome()
        if not rows:
            return outcome
        if session.cancelled.is_set():
            raise SearchCancelled("the DARWIN search was cancelled")
        for key, req in rows.items():
            self._check_row(key, req)
        lead = [r.max_new for r in rows.values() if not r.background and r.max_new > 0]
        background_cap = max(lead, default=1)
        salt = session.salt()
        futures: dict[str, Future[_Done]] = {}
        for key, req in rows.items():
            budget = min(req.max_new, background_cap) if req.background else req.max_new
            if budget <= 0:
                continue
            futures[key] = self._pool.submit(
                self._decode_row, session, key, req, budget, sampling, salt
            )
        finished, _ = wait(futures.values(), return_when=FIRST_EXCEPTION)
        failed = [f for f in finished if f.exception() is not None]
        if failed:
            for pending in futures.values():
                pending.cancel()
            raise failed[0].exception()  # type: ignore[misc]
        for key in rows:
            future = futures.get(key)
            if future is None:
                outcome.rows[key] = RowResult(new_tokens=[], ended=False)
                continue
            done = future.result()
            outcome.rows[key] = done.result
            outcome.work.add_prefill(key, done.prefilled)
            outcome.work.add_decode(key, done.decoded)
        return outcome

    def _check_row(self, key: str, req: RowRequest) -> None:
        if len(req.tokens) < 1:
            raise ValueError(f"row {key!r} has no context tokens to continue from")
        window = self.context_window
        if window is not None and len(req.tokens) + max(req.max_new, 0) > window:
            raise ContextWindowExceeded(
                f"row {key!r} has {len(req.tokens)} context tokens and max_new={req.max_new}, "
                f"more than the server's max_model_len={window} for {self.model!r}; shorten "
                "the conversation or lower max_tokens (or serve with a larger --max-model-len)"
            )

    def _decode_row(
        self,
        session: ServedSession,
        key: str,
        req: RowRequest,
        budget: int,
        sampling: Sampling,
        salt: str | None,
    ) -> _Done:
        """One row, until it ends or uses its budget. A request stops at a stop id (the
        mutation rule's line breaks) or an extra end-of-sequence id; where that is no end
        (a line break before any text, an end-of-sequence under ``ignore_eos``) the row
        continues in a follow-up request with its own seed."""
        new: list[int] = []
        prefilled = decoded = 0
        attempt = 0
        while len(new) < budget:
            if session.cancelled.is_set():
                raise SearchCancelled("the DARWIN search was cancelled")
            seed = row_seed(sampling.seed, key, attempt)
            payload = completion_payload(
                self.model, [*req.tokens, *new], budget - len(new), sampling, seed
            )
            if req.stop_ids:
                payload["stop_token_ids"] = sorted(req.stop_ids)
            if salt is not None:
                payload["cache_salt"] = salt
            body = self.client.post("/v1/completions", payload)
            choice = body["choices"][0]
            usage = body.get("usage") or {}
            details = usage.get("prompt_tokens_details") or {}
            prefilled += int(usage.get("prompt_tokens", 0)) - int(details.get("cached_tokens") or 0)
            decoded += int(usage.get("completion_tokens", len(choice["token_ids"])))
            ids = [int(t) for t in choice["token_ids"]]
            finish, reason = choice.get("finish_reason"), choice.get("stop_reason")
            if finish == "length":
                new += ids
                break
            if finish != "stop":
                raise RequestFailed(
                    f"the server ended row {key!r} with finish_reason={finish!r} "
                    f"(stop_reason={reason!r})"
                )
            last = ids[-1] if ids else None
            if reason is None or (reason in self.eos_token_ids and reason not in req.stop_ids):
                # an end-of-sequence id (vLLM returns it last in token_ids)
                if sampling.ignore_eos and last is not None:
                    new += ids
                    attempt += 1
                    continue
                new += ids[:-1] if last in self.eos_token_ids else ids
                return _Done(RowResult(new, ended=True), prefilled, decoded)
            if reason not in req.stop_ids:
                raise RequestFailed(f"row {key!r} stopped for an unexpected reason {reason!r}")
            new += ids
            if self.detokenize(new).strip():  # the mutation rule: a line break after text
                return _Done(RowResult(new, ended=True), prefilled, decoded)
            attempt += 1  # a line break before any text: keep writing
        return _Done(RowResult(new, ended=False), prefilled, decoded)

    # -- scoring answers with the policy ---------------------------------------------------

    def answer_logprobs(
        self,
        session: ServedSession,
        rows: Mapping[str, tuple[Sequence[int], Sequence[int]]],
    ) -> dict[str, list[float]]:
        """For each row (prompt ids, answer ids): the log-probability of every answer token
        given the prompt and the answer before it (the model's raw distribution, whatever
        the sampling settings), through vLLM's ``prompt_logprobs``."""
        if session.cancelled.is_set():
            raise SearchCancelled("the DARWIN search was cancelled")
        futures = {
            key: self._pool.submit(self._answer_logprobs, key, list(prompt), list(answer))
            for key, (prompt, answer) in rows.items()
        }
        return {key: future.result() for key, future in futures.items()}

    def _answer_logprobs(self, key: str, prompt: list[int], answer: list[int]) -> list[float]:
        if not answer:
            return []
        if not prompt:
            raise ValueError(f"row {key!r} has no prompt to condition its answer on")
        self._check_row(key, RowRequest([*prompt, *answer], 1))
        payload = {
            "model": self.model,
            "prompt": [*prompt, *answer],
            "max_tokens": 1,
            "temperature": 0.0,
            "prompt_logprobs": 0,
            "return_token_ids": True,
        }
        entries = self.client.post("/v1/completions", payload)["choices"][0]["prompt_logprobs"]
        out: list[float] = []
        for position, token in enumerate(answer, start=len(prompt)):
            entry = entries[position] or {}
            found = entry.get(str(token))
            if found is None:
                raise RequestFailed(
                    f"the server returned no log-probability for token {token} at position "
                    f"{position} of row {key!r}"
                )
            out.append(float(found["logprob"]))
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def __repr__(self) -> str:
        return f"ServedPolicy({self.client.root!r}, model={self.model!r})"
