"""The in-process backend: transformers models in this process.

Model loading (``models``: "default", a folder, a hub id), the policy engine (``engine``) with
its per-row KV caches and prefix reuse (``kv``, ``prefix``, ``session``, ``memory``), the layout
of a call's decode batch (``layout``) and its token draws (``sampling``), and the
sequence-classifier reward model that shares that KV machinery (``reward``).
"""

from langchain_darwin.inprocess.engine import TransformersPolicy
from langchain_darwin.inprocess.models import DEFAULT_MODEL, load_policy
from langchain_darwin.inprocess.reward import HFSequenceClassifierReward
from langchain_darwin.inprocess.session import KVSession

__all__ = [
    "DEFAULT_MODEL",
    "HFSequenceClassifierReward",
    "KVSession",
    "TransformersPolicy",
    "load_policy",
]
