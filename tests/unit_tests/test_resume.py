"""A search killed with SIGKILL mid-way resumes in a fresh process and loses nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def worker(tmp: Path, db: str, policy: Path, out: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tests.resume_worker", "--db", str(tmp / db), "--thread", "t1"]
    cmd += ["--policy", str(policy), "--out", str(tmp / out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DARWIN_TEST_PROGRESS": str(tmp / f"{db}.progress")}
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def scored(tmp: Path, db: str) -> int:
    """Answers the worker has scored so far (it appends one byte per answer)."""
    progress = tmp / f"{db}.progress"
    return progress.stat().st_size if progress.exists() else 0


def checkpoints(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute("select count(*) from checkpoints").fetchone()[0]


def test_sigkilled_search_resumes_with_the_same_answer(tiny_dirs, tmp_path: Path) -> None:
    policy = tiny_dirs[0]
    reference = worker(tmp_path, "ref.sqlite", policy, "ref.json")
    assert reference.wait(timeout=600) == 0
    expected = json.loads((tmp_path / "ref.json").read_text())

    total = scored(tmp_path, "ref.sqlite")
    victim = worker(tmp_path, "run.sqlite", policy, "run.json")
    deadline = time.time() + 300
    while scored(tmp_path, "run.sqlite") < total // 4 and time.time() < deadline:
        assert victim.poll() is None, "the search finished before it could be killed"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "run.json").exists()
    assert checkpoints(tmp_path / "run.sqlite") > 0  # it was killed mid-search, checkpointed
    assert scored(tmp_path, "run.sqlite") < total

    resumed = worker(tmp_path, "run.sqlite", policy, "run.json")
    assert resumed.wait(timeout=600) == 0
    got = json.loads((tmp_path / "run.json").read_text())
    assert got["resumed"] is True
    assert got["answer"] == expected["answer"] and got["best"] == expected["best"]
