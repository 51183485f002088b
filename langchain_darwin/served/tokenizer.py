"""The client's side of a served model's tokenizer: its ``tokenizer.json``, chat template and
end-of-sequence ids, read from the model folder without importing transformers (which imports
torch wherever torch is installed).

The chat template renders the way transformers renders it (a sandboxed Jinja environment with
``trim_blocks``/``lstrip_blocks``, ``raise_exception``, ``strftime_now``, ``tojson`` and the
special tokens as variables), so the ids sent to the server are the ids transformers gives.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

_SPECIALS = ("bos_token", "eos_token", "pad_token", "unk_token")


class ClientTokenizer:
    """Tokenize, detokenize and render chats like the model's own tokenizer."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        chat_template: str | None,
        special_tokens: Mapping[str, str],
        eos_token_ids: frozenset[int],
        source: str,
    ) -> None:
        self.backend = tokenizer
        self.chat_template = chat_template
        self.special_tokens = dict(special_tokens)
        self.eos_token_ids = eos_token_ids
        self.source = source

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str]) -> ClientTokenizer:
        """From a saved model or tokenizer folder (``tokenizer.json`` and its config)."""
        path = Path(folder).expanduser()
        if not (path / "tokenizer.json").is_file():
            raise FileNotFoundError(
                f"{str(path)!r} has no tokenizer.json; pass tokenizer= a folder holding the "
                "served model's (fast) tokenizer"
            )
        config = _read_json(path / "tokenizer_config.json")
        specials = {**_read_json(path / "special_tokens_map.json"), **config}
        special_tokens = {k: _content(specials[k]) for k in _SPECIALS if specials.get(k)}
        template = _chat_template(path, config)
        backend = Tokenizer.from_file(str(path / "tokenizer.json"))
        generation = _read_json(path / "generation_config.json").get("eos_token_id")
        eos = set(generation if isinstance(generation, list) else [generation])
        eos.discard(None)
        if "eos_token" in special_tokens:
            eos_id = backend.token_to_id(special_tokens["eos_token"])
            if eos_id is not None:
                eos.add(eos_id)
        return cls(backend, template, special_tokens, frozenset(eos), str(path))

    @classmethod
    def from_transformers(cls, tokenizer: Any) -> ClientTokenizer:
        """From a loaded transformers fast tokenizer (its Rust backend and template)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if not isinstance(backend, Tokenizer):
            raise TypeError("tokenizer= must be a folder or a transformers *fast* tokenizer")
        specials = {k: str(getattr(tokenizer, k)) for k in _SPECIALS if getattr(tokenizer, k)}
        eos = frozenset([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        return cls(backend, tokenizer.chat_template, specials, eos, name)

    # -- text <-> ids ----------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` as written: special tokens in it are recognised, none are added."""
        return list(self.backend.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    @functools.cached_property
    def line_break_ids(self) -> frozenset[int]:
        """Ids whose text contains a line break (the mutation rule's stop tokens)."""
        size = self.backend.get_vocab_size(with_added_tokens=True)
        texts = self.backend.decode_batch([[i] for i in range(size)], skip_special_tokens=False)
        return frozenset(i for i, text in enumerate(texts) if "\n" in text)

    # -- chat ------------------------------------------------------------------------------

    def render_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool,
        **template_kwargs: Any,
    ) -> str:
        if not self.chat_template:
            raise ValueError(
                f"the tokenizer of {self.source!r} has no chat template; pass an "
                "instruction-tuned model (or a tokenizer folder that has one)"
            )
        try:
            return _compile(self.chat_template).render(
                messages=[dict(m) for m in messages],
                add_generation_prompt=add_generation_prompt,
                **self.special_tokens,
                **template_kwargs,
            )
        except TemplateError as err:
            raise ValueError(f"the chat template of {self.source!r} failed: {err}") from err


@functools.lru_cache(maxsize=16)
def _compile(template: str) -> Any:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, **kw: Any) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, **kw)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _content(token: Any) -> str:
    return str(token["content"]) if isinstance(token, dict) else str(token)


def _chat_template(folder: Path, config: Mapping[str, Any]) -> str | None:
    """transformers 5 writes ``chat_template.jinja``; older folders keep it in the config
    (a string, or a list of named templates of which "default" is the chat one)."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        return named.get("default")
    return template
