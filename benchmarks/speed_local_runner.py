"""One method of the local speed benchmark, in this process, on models of one shape.

Methods: ``ours`` (DARWIN, ``cache="kv"``), ``reprefill`` (DARWIN, ``cache="none"``),
``floor`` (Best-of-5 with ``model.generate`` on the prompt repeated 5 times, plus one reward
pass over the 5 answers) and ``batch`` (``BATCH`` DARWIN searches through the chat model's
``batch``, ``cache="kv"``). Every record holds wall time, generated tokens, positions the
policy computed, per-node times and, on CUDA, the peak GPU memory of that run alone.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from langchain_core.callbacks import CallbackManager
from langchain_core.messages import HumanMessage

from benchmarks.common import NodeTimer
from benchmarks.shapes import BenchModels
from benchmarks.speed_common import BEAMS, PAPER
from langchain_darwin import DarwinChatModel
from langchain_darwin.config import DarwinConfig
from langchain_darwin.engines import EngineSpec, register_engine
from langchain_darwin.graph.state import DarwinOutput
from langchain_darwin.inprocess.engine import TransformersPolicy
from langchain_darwin.inprocess.reward import HFSequenceClassifierReward
from langchain_darwin.search import SearchService
from langchain_darwin.usage import PHASES, generated_tokens

METHODS = ("ours", "reprefill", "floor", "batch")
DEFAULT_METHODS = ("ours", "reprefill", "floor")
#: Searches at once in the ``batch`` method.
BATCH = 4
NODES = {"seed", "mutate", "decode_chunk", "score", "select_replace", "update_archive", "finish"}


class GpuPeak:
    """Peak CUDA memory allocated during a ``with`` block: absolute, and above what was
    allocated when it began (weights and anything else held). NaN off CUDA."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.start = self.peak = float("nan")

    def __enter__(self) -> GpuPeak:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated() / 2**20
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() / 2**20

    @property
    def fields(self) -> dict[str, float]:
        return {
            "gpu_start_mb": self.start,
            "gpu_peak_mb": self.peak,
            "gpu_delta_mb": self.peak - self.start,
        }


class Runner:
    """The methods over one set of models. The policy engine is registered under a name of
    its own, so the search service and the chat model resolve it as they would any policy."""

    def __init__(self, models: BenchModels, rm_cache: bool = True) -> None:
        self.models = models
        self.rm_cache = rm_cache
        self.policy = TransformersPolicy(models.policy, models.tokenizer)
        dtype = str(models.policy.dtype).removeprefix("torch.")
        self.model_name = f"bench-{models.shape}-{dtype}"
        self.spec = EngineSpec(model=self.model_name, device=models.device)
        register_engine(self.spec, self.policy)
        self.timer = NodeTimer(NODES)
        self.last_reward: HFSequenceClassifierReward | None = None

    def reward(self) -> HFSequenceClassifierReward:
        """A fresh reward wrapper per run (its prefix cache and counters are the run's own)
        over the one reward model."""
        self.last_reward = HFSequenceClassifierReward(
            self.models.reward, self.models.tokenizer, prefix_cache=self.rm_cache
        )
        return self.last_reward

    def config(self, max_tokens: int, seed: int, cache: str = "kv", **knobs: Any) -> DarwinConfig:
        """The paper's settings (``knobs`` override them)."""
        return DarwinConfig(
            **{**PAPER, "max_tokens": max_tokens, "seed": seed, "cache": cache, **knobs}
        )

    def search(
        self, prompt: str, config: DarwinConfig, callbacks: CallbackManager | None = None
    ) -> DarwinOutput:
        """One search through the search service, on these models."""
        service = SearchService(self.spec, self.reward())
        conversation = [{"role": "user", "content": prompt}]
        return service.run(service.prepare(conversation, config, callbacks=callbacks))

    def chat(self, config: DarwinConfig) -> DarwinChatModel:
        """A chat model on these models (for ``batch``)."""
        return DarwinChatModel(
            model=self.model_name,
            device=self.models.device,
            reward_model=self.reward(),
            config=config,
        )

    def run(self, method: str, prompts: list[str], max_tokens: int, seed: int) -> dict[str, Any]:
        """One timed run of ``method`` on ``prompts[0]`` (``batch``: the first ``BATCH``)."""
        with GpuPeak(self.models.device) as gpu:
            if method == "floor":
                rec = self._floor(prompts[0], max_tokens, seed)
            elif method == "batch":
                rec = self._batch(prompts[:BATCH], max_tokens, seed)
            elif method in ("ours", "reprefill"):
                rec = self._darwin(prompts[0], max_tokens, seed, method == "ours")
            else:
                raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
        rec.update(gpu.fields)
        return rec

    def _sync(self) -> None:
        if self.models.device.startswith("cuda"):
            torch.cuda.synchronize()

    def _darwin(self, prompt: str, max_tokens: int, seed: int, kv: bool) -> dict[str, Any]:
        config = self.config(max_tokens, seed, "kv" if kv else "none")
        self.timer.reset()
        manager = CallbackManager(handlers=[self.timer], inheritable_handlers=[self.timer])
        start = time.perf_counter()
        state = self.search(prompt, config, callbacks=manager)
        self._sync()
        wall = time.perf_counter() - start
        return {
            "wall_s": wall,
            **usage_fields(state["usage"]),
            "node_s": dict(self.timer.totals),
            "node_calls": dict(self.timer.counts),
            "final_reward": state["final_reward"],
            "winner": state["best"]["source"] if state["best"] else None,
            "mutation_stats": state["mutation_stats"],
        }

    def _batch(self, prompts: list[str], max_tokens: int, seed: int) -> dict[str, Any]:
        chat = self.chat(self.config(max_tokens, seed))
        start = time.perf_counter()
        outs = chat.batch([[HumanMessage(p)] for p in prompts], {"max_concurrency": BATCH})
        self._sync()
        wall = time.perf_counter() - start
        metas = [out.response_metadata["darwin"] for out in outs]
        fields = [usage_fields(meta["usage"]) for meta in metas]
        rec: dict[str, Any] = {k: sum(f[k] for f in fields) for k in fields[0] if k != "phases"}
        return {
            "wall_s": wall,
            **rec,
            "searches": len(prompts),
            "phases": {},
            "node_s": {},
            "node_calls": {},
            "final_reward": max(m["final_reward"] or float("-inf") for m in metas),
            "winner": f"{len(prompts)} searches",
            "mutation_stats": {},
        }

    def _floor(self, prompt: str, max_tokens: int, seed: int) -> dict[str, Any]:
        model, tokenizer = self.models.policy, self.models.tokenizer
        conversation = [{"role": "user", "content": prompt}]
        prompt_ids = self.policy.render(conversation)
        ids = torch.tensor([prompt_ids] * BEAMS, dtype=torch.long, device=model.device)
        reward = self.reward()
        start = time.perf_counter()
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=PAPER["temperature"],
                top_k=PAPER["top_k"],
                top_p=1.0,
                min_new_tokens=max_tokens,
                max_new_tokens=max_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
        self._sync()
        mid = time.perf_counter()
        new = out[:, len(prompt_ids) :]
        answers = tokenizer.batch_decode(new, skip_special_tokens=True)
        rewards = reward.score(conversation, answers)
        self._sync()
        end = time.perf_counter()
        generated = int(new.shape[0] * new.shape[1])
        # generate's first forward runs every row's whole prompt; each later step one position.
        prefilled = BEAMS * len(prompt_ids)
        decoded = BEAMS * (int(new.shape[1]) - 1)
        return {
            "wall_s": end - start,
            "generated": generated,
            "answer_tokens": generated,
            "prefilled": prefilled,
            "decoded": decoded,
            "forwarded": prefilled + decoded,
            "reward_positions": reward.positions_scored,
            "reward_answers": len(answers),
            "phases": {},
            "node_s": {"generate": mid - start, "reward": end - mid},
            "node_calls": {},
            "final_reward": max(rewards),
            "winner": "best of 5",
            "mutation_stats": {},
        }


def usage_fields(usage: Any) -> dict[str, Any]:
    """Tokens of one search: generated, answer tokens, what the policy computed (prefilled
    and decoded positions, per phase) and what the reward model read."""
    phases = {p: dict(usage[p]) for p in PHASES}
    prefilled = sum(v["prefilled"] for v in phases.values())
    decoded = sum(v["decoded"] for v in phases.values())
    return {
        "generated": generated_tokens(usage),
        "answer_tokens": phases["seed"]["decoded"] + phases["beams"]["decoded"],
        "prefilled": prefilled,
        "decoded": decoded,
        "forwarded": prefilled + decoded,
        "reward_positions": usage["reward"]["positions"],
        "reward_answers": usage["reward"]["answers"],
        "phases": phases,
    }
