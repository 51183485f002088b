"""A trained reward model from Hugging Face: an ``AutoModelForSequenceClassification`` whose
first logit is the reward (the usual shape of RLHF reward models)."""

from __future__ import annotations

import inspect
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DynamicCache,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from langchain_darwin.inprocess.memory import release_freed_host_memory
from langchain_darwin.inprocess.prefix import CachedRow, PrefixStore, common_prefix, prefill
from langchain_darwin.rewards.base import Conversation, RewardModel

#: "org/name" as the Hugging Face hub spells repository ids.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def _looks_like_hub_id(spec: str) -> bool:
    return bool(_HUB_ID.match(spec)) and ".." not in spec and not spec.endswith(".")


def _check_spec(spec: str) -> None:
    """Fail fast on a typo'd path, before anything is loaded."""
    if not Path(spec).exists() and not _looks_like_hub_id(spec):
        raise FileNotFoundError(
            f"reward model {spec!r} is neither an existing folder nor a hub id 'org/name'; "
            "pass the folder of a saved AutoModelForSequenceClassification reward model "
            "(config.json, weights and tokenizer) or its Hugging Face id"
        )


def _check_is_reward_model(config: PretrainedConfig, where: str) -> None:
    """A causal LM or a multi-class classifier would load with a random head: refuse it."""
    archs = getattr(config, "architectures", None) or []
    if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ValueError(
            f"{where} is a {', '.join(archs)} checkpoint; the reward model must be an "
            "AutoModelForSequenceClassification reward model (one output logit = the reward)"
        )
    if config.num_labels != 1:
        raise ValueError(
            f"{where} has num_labels={config.num_labels}; the reward model must be an "
            "AutoModelForSequenceClassification reward model with num_labels=1"
        )


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | str | None:
    if isinstance(dtype, str) and dtype != "auto":
        resolved = getattr(torch, dtype, None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}")
        return resolved
    return dtype


class HFSequenceClassifierReward(RewardModel):
    """Scores ``conversation + [assistant: answer]`` rendered with the reward model's own chat
    template (it was trained on that format, not the policy's), reward = ``logits[:, 0]``.

    Weights load lazily on the first ``score`` call, once, under a lock. Texts longer than
    ``max_length`` raise instead of being truncated, since a truncated text scores another
    answer. ``positions_scored`` counts the real (non-pad) tokens scored so far.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | PreTrainedModel,
        tokenizer: str | os.PathLike[str] | PreTrainedTokenizerBase | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        batch_size: int = 8,
        max_length: int | None = None,
        prefix_cache: bool = True,
        cache_rows: int = 16,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if isinstance(model, PreTrainedModel):
            self.spec = getattr(model.config, "_name_or_path", "") or type(model).__name__
            _check_is_reward_model(model.config, f"model {self.spec!r}")
        elif isinstance(model, (str, os.PathLike)):
            self.spec = os.fspath(model)
            _check_spec(self.spec)
        else:
            raise TypeError(
                f"model must be a path, a hub id or a PreTrainedModel, got {type(model).__name__}"
            )
        if isinstance(tokenizer, (str, os.PathLike)):
            _check_spec(os.fspath(tokenizer))
        self._model_arg = model
        self._tokenizer_arg = tokenizer
        self.device = torch.device(device) if device is not None else None
        self.dtype = _resolve_dtype(dtype)
        self.batch_size = batch_size
        self.max_length = max_length
        self.positions_scored = 0
        self.prefix_cache = prefix_cache
        self._store: PrefixStore[tuple[int, ...]] = PrefixStore()
        self._cache_rows = cache_rows
        self._calls = 0  # cached scoring calls so far; a row remembers the call that wrote it
        self._written: dict[tuple[int, ...], int] = {}
        self._cache_lock = threading.Lock()
        self._model: PreTrainedModel | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------------

    @property
    def model(self) -> PreTrainedModel:
        self._load()
        assert self._model is not None
        return self._model

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        self._load()
        assert self._tokenizer is not None
        return self._tokenizer

    def ready(self) -> None:
        self._load()

    def _load(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is None:
                model = self._load_model()  # first: its error names what to fix
                tokenizer = self._load_tokenizer()
                self._set_pad(model, tokenizer)
                if self.max_length is None:
                    self.max_length = self._default_max_length(model, tokenizer)
                self._tokenizer, self._model = tokenizer, model

    def _load_model(self) -> PreTrainedModel:
        if isinstance(self._model_arg, PreTrainedModel):
            model = self._model_arg
            if self.device is not None or isinstance(self.dtype, torch.dtype):
                dtype = self.dtype if isinstance(self.dtype, torch.dtype) else None
                model = model.to(device=self.device, dtype=dtype)
            return model.eval()
        try:
            config = AutoConfig.from_pretrained(self.spec)
        except OSError as err:
            raise OSError(
                f"could not load reward model {self.spec!r}: not a saved model folder and not "
                "in the local Hugging Face cache (the hub may be unreachable)"
            ) from err
        _check_is_reward_model(config, f"reward model {self.spec!r}")
        kwargs: dict[str, Any] = {} if self.dtype is None else {"dtype": self.dtype}
        model = AutoModelForSequenceClassification.from_pretrained(self.spec, **kwargs)
        device = self.device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return model.to(device).eval()

    def _load_tokenizer(self) -> PreTrainedTokenizerBase:
        source = self._tokenizer_arg
        if isinstance(source, PreTrainedTokenizerBase):
            tokenizer = source
        else:
            if source is None:
                if isinstance(self._model_arg, PreTrainedModel) and not Path(self.spec).is_dir():
                    raise ValueError(
                        "a reward model passed as an object needs tokenizer= (its own tokenizer)"
                    )
                source = self.spec
            tokenizer = AutoTokenizer.from_pretrained(os.fspath(source))
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"the tokenizer of reward model {self.spec!r} has no chat template, so there is "
                "no way to know the format it was trained on; pass tokenizer= one that has, "
                "or set tokenizer.chat_template"
            )
        return tokenizer

    @staticmethod
    def _set_pad(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        """The classifier reads the last non-pad token, so batches need one agreed pad id."""
        text_config = model.config.get_text_config()
        pad_id = text_config.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.eos_token_id
        if pad_id is None:
            eos = text_config.eos_token_id
            pad_id = eos[0] if isinstance(eos, list) else eos
        if pad_id is None:
            raise ValueError("reward model has neither a pad nor an eos token to pad batches with")
        text_config.pad_token_id = model.config.pad_token_id = int(pad_id)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token_id = int(pad_id)

    @staticmethod
    def _default_max_length(
        model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
    ) -> int | None:
        limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        if limit is None and tokenizer.model_max_length < 1_000_000:
            limit = tokenizer.model_max_length
        return limit

    # -- scoring -------------------------------------------------------------------------------

    def render(self, conversation: Conversation, answer: str) -> str:
        """The text the reward model reads: its own chat template over the full exchange."""
        messages = [dict(m) for m in conversation] + [{"role": "assistant", "content": answer}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False)

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        if not answers:
            return []
        tokenizer = self.tokenizer
        texts = [self.render(conversation, a) for a in answers]
        # The template already wrote every special token; never add (or strip) a bos here.
        ids: list[list[int]] = tokenizer(texts, add_special_tokens=False)["input_ids"]
        if self.max_length is not None:
            for i, row in enumerate(ids):
                if len(row) > self.max_length:
                    raise ValueError(
                        f"answer {i} renders to {len(row)} reward-model tokens, over the "
                        f"max_length={self.max_length} of {self.spec!r}; it is not truncated "
                        "silently: shorten max_tokens or pass a larger max_length"
                    )
        scores: list[float] = []
        if self.prefix_cache and self._cacheable():
            # the conversation's own tokens: rows that share them are this conversation's
            # (cleared out by the call's last batch; earlier ones may still need them)
            empty = tokenizer(self.render(conversation, ""), add_special_tokens=False)
            head = common_prefix(empty["input_ids"], ids[0])
            # one call at a time, so its stamp orders it among the calls that share the cache
            with self._cache_lock, torch.inference_mode():
                self._calls += 1
                for start in range(0, len(ids), self.batch_size):
                    batch = ids[start : start + self.batch_size]
                    last = start + self.batch_size >= len(ids)
                    scores.extend(self._forward_cached(batch, head if last else 0, self._calls))
            release_freed_host_memory(self.model.device)
            return scores
        for start in range(0, len(ids), self.batch_size):
            scores.extend(self._forward(ids[start : start + self.batch_size]))
        with self._lock:
            self.positions_scored += sum(len(row) for row in ids)
        return scores

    def _cacheable(self) -> bool:
        """A causal backbone with a ``score`` head on the last token (Llama, Mistral, Qwen,
        Gemma... sequence classifiers) can reuse the KV cache of text it already read."""
        model = self.model
        head = getattr(model, "score", None)
        if not isinstance(head, torch.nn.Linear) or model.base_model is model:
            return False
        params = inspect.signature(model.base_model.forward).parameters
        return "cache" in params or "past_key_values" in params

    def _backbone(
        self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: DynamicCache
    ) -> torch.Tensor:
        base = self.model.base_model
        params = inspect.signature(base.forward).parameters
        cache_arg = "cache" if "cache" in params else "past_key_values"
        out = base(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            **{cache_arg: cache},
        )
        return out.last_hidden_state

    def _forward_cached(self, rows: list[list[int]], head: int, call: int) -> list[float]:
        """Score rows forwarding only what no cached row shares: a beam one period longer
        costs its new tokens plus the template tail; a copied answer costs one position.
        ``head`` is how many leading tokens are the conversation's (0: keep its rows);
        ``call`` stamps the rows. The caller holds the cache lock."""
        model = self.model
        pad_id = model.config.get_text_config().pad_token_id

        # Once this call has planned what it reuses, rows it continues from (superseded)
        # and the rows earlier calls cached for this conversation (one it does not extend
        # is a beam that was replaced: nothing will extend it) leave the store, so their
        # buffers are freed while the new batch is built. Rows of other conversations
        # (other searches sharing this model) survive one foreign call.
        def evict(key: tuple[int, ...]) -> bool:
            written = self._written[key]
            ours = head > 0 and common_prefix(key, rows[0]) >= head
            return written < call - 1 or (written < call and ours)

        filled = prefill(
            self._backbone,
            self._store,
            {i: row for i, row in enumerate(rows)},
            pad_id=pad_id,
            device=model.device,
            need_last=True,
            consume=True,
            evict=evict,
        )
        hidden = torch.stack([filled.last[i] for i in range(len(rows))])
        logits = model.score(hidden.to(model.score.weight.dtype))
        for i, row in enumerate(rows):
            self._store.rows.pop(tuple(row), None)
            self._store.rows[tuple(row)] = CachedRow(list(row), filled.kv[i])
            self._written[tuple(row)] = call
        while len(self._store.rows) > self._cache_rows:
            self._store.rows.pop(next(iter(self._store.rows)))
        self._written = {key: self._written[key] for key in self._store.rows}
        self.positions_scored += sum(filled.forwarded.values())
        del filled
        return logits[:, 0].float().cpu().tolist()

    def _forward(self, rows: list[list[int]]) -> list[float]:
        """One right-padded batch through the classifier."""
        model = self.model
        pad_id = model.config.get_text_config().pad_token_id
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, : len(row)] = 1
        with torch.inference_mode():
            out = model(
                input_ids=input_ids.to(model.device),
                attention_mask=attention_mask.to(model.device),
            )
        return out.logits[:, 0].float().cpu().tolist()

    def __repr__(self) -> str:
        return f"HFSequenceClassifierReward({self.spec!r})"
