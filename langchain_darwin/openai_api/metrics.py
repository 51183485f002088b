"""The server's counters in Prometheus' text format (``GET /metrics``): requests by status,
queue depth, searches running, search seconds, generated tokens, rejections, cancellations."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Metrics:
    requests: Counter[int] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    searches: int = 0
    search_seconds: float = 0.0
    generated_tokens: int = 0
    prompt_tokens: int = 0
    cancelled: int = 0

    def searched(self, seconds: float, generated: int, prefilled: int) -> None:
        self.searches += 1
        self.search_seconds += seconds
        self.generated_tokens += generated
        self.prompt_tokens += prefilled

    def render(self, running: int, waiting: int) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help: str, rows: list[tuple[str, float]]) -> None:
            lines.extend([f"# HELP darwin_{name} {help}", f"# TYPE darwin_{name} {kind}"])
            lines.extend(f"darwin_{name}{labels} {value:g}" for labels, value in rows)

        label: Callable[[str, object], str] = lambda k, v: f'{{{k}="{v}"}}'  # noqa: E731
        metric(
            "requests_total",
            "counter",
            "Chat completion requests answered, by HTTP status.",
            [(label("status", s), n) for s, n in sorted(self.requests.items())],
        )
        metric(
            "rejections_total",
            "counter",
            "Requests refused before any decoding, by reason.",
            [(label("reason", r), n) for r, n in sorted(self.rejections.items())],
        )
        metric("queue_depth", "gauge", "Requests waiting for a search slot.", [("", waiting)])
        metric("searches_running", "gauge", "Searches running now.", [("", running)])
        metric(
            "search_seconds",
            "summary",
            "Wall seconds of finished searches.",
            [("_sum", self.search_seconds), ("_count", self.searches)],
        )
        metric(
            "generated_tokens_total",
            "counter",
            "Tokens sampled from the policy by finished searches.",
            [("", self.generated_tokens)],
        )
        metric(
            "prompt_tokens_total",
            "counter",
            "Positions prefilled through the policy by finished searches.",
            [("", self.prompt_tokens)],
        )
        metric(
            "searches_cancelled_total",
            "counter",
            "Searches stopped because their client went away.",
            [("", self.cancelled)],
        )
        return "\n".join(lines) + "\n"
