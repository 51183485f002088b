"""The resume store: one JSON line per (configuration, prompt) run, appended as each run
finishes, so an interrupted benchmark picks up where it stopped."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

#: The fields that identify a run: a row with the same values is not run again.
KEY_FIELDS = ("steer", "variant", "method", "budget", "qid", "max_tokens", "seed", "period")


def run_key(row: dict[str, Any]) -> str:
    return "|".join(str(row[k]) for k in KEY_FIELDS)


def load_done(path: Path) -> dict[str, dict[str, Any]]:
    """The rows already in ``path``, by :func:`run_key`."""
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a run killed mid-write: that row runs again
                continue
            done[run_key(row)] = row
    return done


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one row and sync it to disk, so a killed run loses at most the one running."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(json_safe(row)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as ``None`` (JSON has no NaN or infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value
