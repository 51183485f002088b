"""One place that turns an engine spec into a policy engine, built once and reused.

A spec names the policy and where it runs: in this process (transformers; ``base_url`` None)
or on a serving engine (vLLM's OpenAI-compatible API at ``base_url``). Engines are cached by
spec, so every chat model, CLI run, ``darwin generate`` row and served-graph run that names the
same policy shares one engine (its weights, or its HTTP connection pool and tokenizer). The
backends are imported here on first use: the protocol and the graph never import torch.
This module stands above both backends (it knows them; they know only the protocol).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from langchain_darwin.config import DEFAULT_MODEL
from langchain_darwin.policy.base import PolicyEngine


@dataclass(frozen=True)
class EngineSpec:
    """Which policy, and where. ``base_url`` set: a served engine (``model`` is the name the
    server serves it under); unset: in process (``model`` is "default", a folder or a hub id,
    placed on ``device`` in ``dtype``)."""

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float | None = None
    max_retries: int | None = None
    device: str | None = None
    dtype: str | None = None

    @property
    def served(self) -> bool:
        return self.base_url is not None


_ENGINES: dict[EngineSpec, PolicyEngine] = {}
_LOCK = threading.Lock()


def get_engine(spec: EngineSpec) -> PolicyEngine:
    """The engine for ``spec``, built on first use (loading weights or checking the server)
    and shared afterwards. Engines are thread-safe: per-run state lives in their sessions."""
    with _LOCK:
        engine = _ENGINES.get(spec)
        if engine is None:
            engine = _ENGINES[spec] = _build(spec)
        return engine


def register_engine(spec: EngineSpec, engine: PolicyEngine) -> None:
    """Use ``engine``, built elsewhere, wherever ``spec`` is named: a model already in memory
    (random weights of a given shape in a benchmark, a model loaded with options the
    resolver does not take). A spec already bound to another engine is refused, so that no
    search loses its policy mid-run."""
    with _LOCK:
        held = _ENGINES.get(spec)
        if held is not None and held is not engine:
            raise ValueError(
                f"{spec} already names another engine ({held!r}); pick another model name, "
                "or clear_engines() first"
            )
        _ENGINES[spec] = engine


def _build(spec: EngineSpec) -> PolicyEngine:
    if spec.served:
        from langchain_darwin.served.policy import ServedPolicy

        if spec.device is not None or spec.dtype is not None:
            raise ValueError(
                "device and dtype choose where an in-process policy runs; with base_url the "
                "server decides them (pass --dtype etc. to the server), so leave them unset"
            )
        return ServedPolicy(
            base_url=spec.base_url,  # type: ignore[arg-type]
            model=spec.model,
            api_key=spec.api_key,
            timeout=spec.timeout,
            max_retries=spec.max_retries,
        )
    from langchain_darwin.inprocess.engine import TransformersPolicy
    from langchain_darwin.inprocess.models import load_policy

    return TransformersPolicy(*load_policy(spec.model, device=spec.device, dtype=spec.dtype))


def clear_engines() -> None:
    """Forget every cached engine (tests; a process that wants its memory back)."""
    with _LOCK:
        _ENGINES.clear()
