"""Start-up checks shared by the served policy and the served reward model: the server
answers, serves the model asked for, and tokenizes as the client does."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_darwin.served.client import ServerClient
from langchain_darwin.served.errors import ModelNotServed, TokenizerMismatch
from langchain_darwin.served.tokenizer import ClientTokenizer

#: Text whose ids the client's and the server's tokenizers must agree on: chat markup,
#: line breaks, spaces, digits, accents, an emoji.
TOKENIZER_PROBE = "Hello, world!\n\n  Numbers 12345; caf\u00e9, na\u00efve \U0001f642\tdone."


def served_model(client: ServerClient, model: str) -> dict[str, Any]:
    """The server's model card for ``model`` (``/v1/models``), or a named error."""
    cards = client.get("/v1/models").get("data", [])
    for card in cards:
        if card.get("id") == model:
            return card
    names = ", ".join(repr(c.get("id")) for c in cards) or "none"
    raise ModelNotServed(
        f"the server at {client.root} does not serve {model!r}; it serves {names} "
        "(pass one of those as model=, the server's --served-model-name)"
    )


def load_client_tokenizer(tokenizer: Any, card: Mapping[str, Any]) -> ClientTokenizer:
    """The tokenizer given, or the folder the server loaded (``root`` of its model card) when
    it is on this machine, or that hub id in the local Hugging Face cache."""
    if isinstance(tokenizer, ClientTokenizer):
        return tokenizer
    if isinstance(tokenizer, (str, os.PathLike)):
        return ClientTokenizer.from_folder(tokenizer)
    if tokenizer is not None:
        return ClientTokenizer.from_transformers(tokenizer)
    root = card.get("root") or card.get("id")
    if root and Path(root).is_dir():
        return ClientTokenizer.from_folder(root)
    cached = _hub_cache_folder(root) if root else None
    if cached is not None:
        return ClientTokenizer.from_folder(cached)
    raise ValueError(
        f"the server loaded {root!r}, which is neither a folder on this machine nor in the "
        "local Hugging Face cache; pass tokenizer= the served model's tokenizer folder"
    )


def _hub_cache_folder(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        patterns = ["tokenizer*", "special_tokens_map.json", "generation_config.json", "*.jinja"]
        folder = snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns)
    except Exception:  # not a hub id, or not cached: the caller says what to pass instead
        return None
    return Path(folder) if (Path(folder) / "tokenizer.json").is_file() else None


def check_tokenizer(client: ServerClient, model: str, tokenizer: ClientTokenizer) -> None:
    """The ids the client sends must mean to the server what they mean to the client."""
    probe = TOKENIZER_PROBE
    if tokenizer.chat_template:
        probe = tokenizer.render_chat([{"role": "user", "content": probe}], True) + probe
    ours = tokenizer.encode(probe)
    body = client.post("/tokenize", {"model": model, "prompt": probe, "add_special_tokens": False})
    theirs = [int(t) for t in body["tokens"]]
    if ours != theirs:
        at = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), None)
        at = min(len(ours), len(theirs)) if at is None else at
        raise TokenizerMismatch(
            f"the client's tokenizer ({tokenizer.source}) and the server's tokenizer for "
            f"{model!r} at {client.root} disagree on a probe text from token {at} on "
            f"(client {ours[at : at + 5]}, server {theirs[at : at + 5]}); pass tokenizer= the "
            "served model's own tokenizer folder"
        )
