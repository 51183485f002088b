"""``darwin generate --concurrency 4`` against the real vLLM servers (tests/servers.py): rows
searched at once as concurrent requests, written in input order, and a crashed run resumed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_darwin import cli

PROMPTS = [
    "How do I boil an egg?",
    "Name three herbs",
    "Say hello in French",
    "What is rain?",
    "Describe a cat",
    "Count to three",
]


def generate(servers: tuple[Any, Any], src: Path, out: Path, *extra: str) -> int:
    policy, reward = servers
    argv = ["generate", "-i", str(src), "-o", str(out), "--quiet", "--concurrency", "4"]
    argv += ["--base-url", policy.base_url, "--model", policy.model, "--timeout", "120"]
    argv += ["--reward-base-url", reward.base_url, "--reward-model", reward.model]
    argv += ["--max-tokens", "12", "--replacement-period", "6", "--budget", "5", "--seed", "2"]
    return cli.main([*argv, *extra])


def test_concurrent_rows_on_the_servers_keep_order_and_resume(
    vllm_servers: tuple[Any, Any], tmp_path: Path, capsys: Any
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"instruction": p}) + "\n" for p in PROMPTS))
    out = tmp_path / "out.jsonl"
    assert generate(vllm_servers, src, out, "--limit", "3") == 0
    first = out.read_text()
    with out.open("a") as fh:  # a crash in the middle of writing row 3
        fh.write('{"instruction": "What is rain?", "outp')
    capsys.readouterr()
    assert generate(vllm_servers, src, out) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["skipped"], summary["written"]) == (3, 3)
    assert out.read_text().startswith(first)  # finished rows untouched, the torn one redone
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(len(PROMPTS)))
    assert [r["instruction"] for r in records] == PROMPTS
    for index, record in enumerate(records):
        assert record["darwin"]["seed"] == 2 + index  # each row's own seed
        assert record["darwin"]["config"]["max_tokens"] == 12
        assert record["darwin"]["generated_tokens"] > 0
        assert record["reward"] == record["darwin"]["final_reward"]
