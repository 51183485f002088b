"""A DARWIN graph run in its own process, checkpointed to SQLite (used by test_resume.py).

``run`` starts a search (or resumes it when the thread already has checkpoints) and writes
the final answer and best tokens as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver

from langchain_darwin import DarwinConfig, build_darwin_graph
from langchain_darwin.graph.builder import recursion_limit
from langchain_darwin.graph.state import DarwinContext
from langchain_darwin.inprocess.engine import TransformersPolicy
from langchain_darwin.inprocess.models import load_policy
from langchain_darwin.rewards import CallableReward

CONFIG = DarwinConfig(seed=11, max_tokens=96, replacement_period=4, iterations=2)
CONVERSATION = [{"role": "user", "content": "Tell me about eggs"}]


def slow_vowels(conversation, answer: str) -> float:
    time.sleep(0.02)  # slow enough for the test to kill the process mid-search
    progress = os.environ.get("DARWIN_TEST_PROGRESS")
    if progress:  # one byte per scored answer: how far the search got, without locking the DB
        with open(progress, "ab") as fh:
            fh.write(b".")
    return float(sum(ch in "aeiou " for ch in answer))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--thread", required=True)
    parser.add_argument("--policy", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model, tokenizer = load_policy(args.policy)
    policy = TransformersPolicy(model, tokenizer)
    saver = SqliteSaver(sqlite3.connect(args.db, check_same_thread=False))
    graph = build_darwin_graph().compile(checkpointer=saver)
    config = {
        "configurable": {"thread_id": args.thread},
        "recursion_limit": recursion_limit(CONFIG),
    }
    context = DarwinContext(policy, CallableReward(slow_vowels), policy.new_session())
    resuming = graph.get_state(config).next != ()
    start = None if resuming else {"conversation": CONVERSATION, "config": CONFIG.model_dump()}
    state = graph.invoke(start, config=config, context=context, durability="sync")
    Path(args.out).write_text(
        json.dumps({"answer": state["answer"], "best": state["best"], "resumed": resuming})
    )


if __name__ == "__main__":
    main()
