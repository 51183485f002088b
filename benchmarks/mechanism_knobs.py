"""Issue 18 item 1/4: the search knobs on the mechanism test's setting (fake engine, an
additive letter-count reward, 192 tokens, m = 32, ignore_eos, the unit test's 24 paired
seeds): each configuration's mean paired gain over Best-of-N at the same beams, with its
standard error. A reward whose partial value predicts its final value is where replacement
must pay; this shows how much each knob buys there (the real reward: benchmarks/frontier.py).

    python benchmarks/mechanism_knobs.py
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.unit_tests.test_search_pays import SEEDS, final_reward  # noqa: E402

ROWS: list[tuple[int, str, dict[str, Any]]] = [
    *(
        (budget, method, {})
        for budget in (5, 10, 15)
        for method in ("sample_replace", "darwin", "mutate_best_of_n")
    ),
    (5, "sample_replace", {"survivors": 1}),
    *(
        (5, "sample_replace", {"selection": "softmax", "selection_temperature": t})
        for t in (0.5, 1.0, 2.0)
    ),
    (5, "darwin", {"selection": "softmax", "selection_temperature": 0.5}),
    (5, "sample_replace", {"seed_answer": False}),
    (5, "sample_replace", {"replacement_horizon": 96}),
    (10, "sample_replace", {"beams_per_instruction": 2}),
    (15, "sample_replace", {"beams_per_instruction": 3}),
]


def main() -> None:
    print("| budget (beams) | method | knobs | Best-of-N | gain over Best-of-N (± s.e.) |")
    print("|---|---|---|---|---|")
    for budget, method, knobs in ROWS:
        bon = [final_reward("best_of_n", budget, s) for s in SEEDS]
        gains = [
            final_reward(method, budget, s, **knobs) - b for s, b in zip(SEEDS, bon, strict=True)
        ]
        se = statistics.stdev(gains) / len(gains) ** 0.5
        print(
            f"| {budget} | {method} | {knobs or 'paper'} | {statistics.fmean(bon):.2f} "
            f"| {statistics.fmean(gains):+.2f} ± {se:.2f} |"
        )


if __name__ == "__main__":
    main()
