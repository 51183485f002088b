"""Running a DARWIN search for the ``darwin`` command: stream the graph, keep its latest
state (so Ctrl-C can still answer with the best so far) and show live progress with rich."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from langchain_darwin.config import DarwinConfig
from langchain_darwin.policy.text import answer_text
from langchain_darwin.rewards.base import Conversation
from langchain_darwin.search import PreparedSearch, SearchService
from langchain_darwin.usage import generated_tokens


@dataclass
class Candidate:
    """An answer with the reward it was scored at: ``partial`` if its beam was unfinished."""

    tokens: list[int]
    reward: float
    source: str
    partial: bool = False


@dataclass
class Tracker:
    """What one search has shown so far: its latest state and its latest progress event."""

    label: str
    config: DarwinConfig | None = None
    search: PreparedSearch | None = None
    state: dict[str, Any] = field(default_factory=dict)
    step: str = "loading models"
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    def feed(self, mode: str, chunk: Any) -> None:
        if mode == "values":
            self.state = chunk
        elif isinstance(chunk, dict) and "step" in chunk:
            self.step = chunk["step"]
        self.seconds = time.monotonic() - self.started

    @property
    def finished(self) -> bool:
        return "answer" in self.state

    def text(self, tokens: list[int]) -> str:
        """Answer tokens as text, cut at the first stop string as the graph cuts answers."""
        assert self.search is not None and self.config is not None, "the search has not started"
        return answer_text(self.search.context.policy, tokens, self.config.stop)

    def best(self) -> Candidate | None:
        """The best scored answer so far: the search's best, the seed, or a beam's prefix."""
        state, found = self.state, []
        if state.get("best"):
            best = state["best"]
            found.append(Candidate(best["answer"], best["reward"], best["source"]))
        beams = [("seed", state["seed"])] if state.get("seed") else []
        for i, beam in enumerate(state.get("beams", [])):
            beams.append((f"cycle {state['cycle']} beam {i}", beam))
        for source, beam in beams:
            if beam["reward"] is not None:
                tokens = beam["answer"][: beam["scored"]]  # the text its reward was given for
                found.append(Candidate(tokens, beam["reward"], source, not beam["finished"]))
        return max(found, key=lambda c: c.reward, default=None)

    def __rich__(self) -> Table:
        """One line: where the search is, beams alive, best and seed reward, tokens, time."""
        state, cfg = self.state, self.config
        if cfg is None or "seed" not in state:
            where = "starting"
        elif cfg.iterations == 0:
            where = "seed only"
        else:
            where = f"cycle {min(state['cycle'] + 1, cfg.iterations)}/{cfg.iterations}"
        beams = state.get("beams", [])
        alive = sum(not b["finished"] for b in beams)
        best = self.best()
        tokens = generated_tokens(state["usage"]) if "usage" in state else 0
        done = self.finished
        seconds = self.seconds if done else time.monotonic() - self.started
        line = Text.assemble(
            f"{where} · period {state.get('period', 0)} · {'done' if done else self.step} · ",
            f"beams alive {alive}/{len(beams)} · " if beams else "",
            (f"best {_fmt(best.reward if best else None)}", "bold green"),
            f" · seed {_fmt((state.get('seed') or {}).get('reward'))}",
            f" · {tokens} tokens · {seconds:.0f} s",
        )
        label = Text(self.label, style="bold")
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=len(self.label) + 2)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        grid.add_row(Text.assemble("✓ ", label) if done else Spinner("dots", label), line)
        return grid


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}" if math.isfinite(value) else str(value)


@contextmanager
def _stop_on_ctrl_c(tracker: Tracker) -> Iterator[None]:
    """Ctrl-C cancels the search's session, so the node running in LangGraph's executor
    stops at its next token instead of finishing its step, then interrupts as usual."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        tracker.step = "Ctrl-C: stopping"
        if tracker.search is not None:
            tracker.search.cancel()
        signal.default_int_handler(signum, frame)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_with_progress(
    service: SearchService,
    conversation: Conversation,
    config: DarwinConfig,
    tracker: Tracker,
    console: Console | None,
) -> dict[str, Any]:
    """Run one search of ``service`` to its end, streaming its states into ``tracker``, so
    that after a Ctrl-C the tracker holds the last state."""
    live = Live(tracker, console=console, refresh_per_second=4) if console else nullcontext()
    try:
        with live, _stop_on_ctrl_c(tracker):
            search = service.prepare(conversation, config)  # loads weights on first use
            tracker.search, tracker.started = search, time.monotonic()  # time the search only
            tracker.config = search.config
            for mode, chunk in service.stream(search):
                tracker.feed(mode, chunk)
    finally:
        if console is not None and not console.is_terminal:
            console.line()  # rich ends a terminal's live line itself, but not a file's
    return tracker.state
