"""The served reward model: a sequence classifier served by vLLM (``--runner pooling``),
scored through ``/classify``.

The conversation and each answer are rendered with the reward model's own chat template on
the client (it was trained on that format, not the policy's) and sent as token ids, so the
server scores exactly the ids the client made; ``use_activation: false`` returns the raw
logit (vLLM otherwise applies a sigmoid to a one-label head).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from langchain_darwin.rewards.base import Conversation, RewardModel, Scored
from langchain_darwin.served.client import ServerClient
from langchain_darwin.served.errors import RequestFailed
from langchain_darwin.served.startup import check_tokenizer, load_client_tokenizer, served_model


class ServedReward(RewardModel):
    """Scores ``conversation + [assistant: answer]`` on a vLLM-served reward model.

    ``base_url`` is written as for the policy (``http://host:port/v1``, the ``/v1``
    optional); ``tokenizer`` defaults to the folder the server loaded, when this machine can
    read it. The server is checked at construction (it answers, serves ``model``, tokenizes
    as the client does). Texts over the server's ``max_model_len`` raise instead of being
    truncated: a truncated text scores another answer. ``positions_scored`` counts the tokens
    sent to be scored (the server does not report what its prefix cache saved on this route).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer: str | os.PathLike[str] | Any | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.client = ServerClient(base_url, api_key, timeout, max_retries)
        card = served_model(self.client, model)
        self.max_length: int | None = card.get("max_model_len")
        self.tokenizer = load_client_tokenizer(tokenizer, card)
        check_tokenizer(self.client, model, self.tokenizer)
        self.positions_scored = 0
        self._lock = threading.Lock()

    def render(self, conversation: Conversation, answer: str) -> str:
        """The text the reward model reads: its own chat template over the full exchange."""
        messages = [dict(m) for m in conversation] + [{"role": "assistant", "content": answer}]
        return self.tokenizer.render_chat(messages, add_generation_prompt=False)

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        return self.score_with_usage(conversation, answers).scores

    def score_with_usage(self, conversation: Conversation, answers: Sequence[str]) -> Scored:
        """Scores, and the positions of this call's texts (the server reads them all)."""
        if not answers:
            return Scored()
        ids = [self.tokenizer.encode(self.render(conversation, a)) for a in answers]
        if self.max_length is not None:
            for i, row in enumerate(ids):
                if len(row) > self.max_length:
                    raise ValueError(
                        f"answer {i} renders to {len(row)} reward-model tokens, over the "
                        f"server's max_model_len={self.max_length} for {self.model!r}; it is not "
                        "truncated silently: shorten max_tokens or serve a longer context"
                    )
        scores: list[float] = []
        for start in range(0, len(ids), self.batch_size):
            scores.extend(self._classify(ids[start : start + self.batch_size]))
        positions = sum(len(row) for row in ids)
        with self._lock:
            self.positions_scored += positions
        return Scored(scores, positions)

    def _classify(self, rows: list[list[int]]) -> list[float]:
        payload = {
            "model": self.model,
            "input": rows,
            "use_activation": False,
            "add_special_tokens": False,  # the template wrote every special token
        }
        data = self.client.post("/classify", payload).get("data", [])
        by_index = {int(item["index"]): item["probs"] for item in data}
        if sorted(by_index) != list(range(len(rows))):
            raise RequestFailed(
                f"/classify on {self.client.root} answered {len(data)} scores for {len(rows)} texts"
            )
        for i, probs in by_index.items():
            if len(probs) != 1:
                raise RequestFailed(
                    f"{self.model!r} returned {len(probs)} classes for text {i}; a reward model "
                    "has one output (num_labels=1)"
                )
        return [float(by_index[i][0]) for i in range(len(rows))]

    def close(self) -> None:
        self.client.close()

    def __repr__(self) -> str:
        return f"ServedReward({self.client.root!r}, model={self.model!r})"
