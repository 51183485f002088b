"""Tool-call validity with and without DARWIN on the embedded SmolLM2-135M-Instruct.

Each prompt is sent to ``DarwinChatModel.bind_tools([get_weather, add], tool_choice="any")``:
the tools are in the system prompt and a call is forced. An answer counts as *valid* when it
parses and validates into ``tool_calls`` (``langchain_darwin.tools.parse_tool_call``), and as
*right* when, in addition, it calls the expected tool with the expected arguments.

Arms (same prompts, same seeds, same ``max_tokens``):
- ``plain``: ``iterations=0``, the seed answer only (plain sampling, no search);
- ``darwin``: the default knobs (one mutation cycle, 5 instructions, replacement), reward =
  offline default + ``validity_weight`` (1.0) * validity;
- ``darwin_no_validity``: the same search with ``validity_weight=0`` (the user reward only),
  to tell the search's effect from the validity term's.

``--shots 1`` puts one worked example per tool before the question (LangChain's
``tool_example_to_messages``: the request, the assistant's tool call, the tool's result and the
assistant's answer), the usual few-shot help for small models; the chat model renders those
turns as context (calls as JSON text, results as user turns).

Usage: ``python benchmarks/tools_validity.py [--seeds 2] [--shots 0 1] [--max-tokens 64]``.
Rows go to ``benchmarks/out/tools/runs.jsonl`` (a rerun skips rows already there).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import tool_example_to_messages
from pydantic import BaseModel

from langchain_darwin import DarwinChatModel
from langchain_darwin.tools import ToolSetup, parse_tool_call


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return "sunny"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


TOOLS = [get_weather, add]
FORCED = ToolSetup.of(TOOLS, "any")
PROMPTS: list[tuple[str, str, dict[str, Any]]] = [
    ("What's the weather like in Tokyo right now?", "get_weather", {"city": "Tokyo"}),
    ("Do I need an umbrella in London today?", "get_weather", {"city": "London"}),
    ("How warm is it in Cairo at the moment?", "get_weather", {"city": "Cairo"}),
    ("What is 17 plus 25?", "add", {"a": 17, "b": 25}),
    ("Add 123 and 456.", "add", {"a": 123, "b": 456}),
    ("I had 8 apples and bought 5 more. How many apples do I have?", "add", {"a": 8, "b": 5}),
]
ARMS: dict[str, dict[str, Any]] = {
    "plain": {"iterations": 0},
    "darwin": {},
    "darwin_no_validity": {"validity_weight": 0.0},
}


class GetWeather(BaseModel):
    city: str


class Add(BaseModel):
    a: int
    b: int


GetWeather.__name__ = "get_weather"  # the call names the tool
Add.__name__ = "add"


def examples() -> list[BaseMessage]:
    """One worked example per tool, as an agent loop would have left them."""
    warnings.filterwarnings("ignore", message=".*tool_example_to_messages.*is in beta")
    weather = tool_example_to_messages(
        "What's the weather in Rome?",
        [GetWeather(city="Rome")],
        tool_outputs=["Sunny, 24 C"],
        ai_response="It is sunny in Rome, 24 C.",
    )
    adding = tool_example_to_messages(
        "What is 2 plus 3?", [Add(a=2, b=3)], tool_outputs=["5"], ai_response="2 + 3 = 5."
    )
    return [*weather, *adding]


OUT = Path(__file__).resolve().parent / "out" / "tools" / "runs.jsonl"


def right(call: dict[str, Any] | None, name: str, args: dict[str, Any]) -> bool:
    if call is None or call["name"] != name:
        return False
    norm = {k: str(v).strip().lower() for k, v in call["args"].items()}
    return norm == {k: str(v).lower() for k, v in args.items()}


def run(arm: str, index: int, seed: int, max_tokens: int, shots: int) -> dict[str, Any]:
    prompt, name, args = PROMPTS[index]
    messages = [*(examples() if shots else []), HumanMessage(prompt)]
    llm = DarwinChatModel(model="default", max_tokens=max_tokens, seed=seed)
    knobs = dict(ARMS[arm])
    start = time.perf_counter()
    message = llm.bind_tools(TOOLS, tool_choice="any").invoke(messages, **knobs)
    meta = message.response_metadata["darwin"]
    call = message.tool_calls[0] if message.tool_calls else None
    return {
        "arm": arm,
        "prompt": index,
        "seed": seed,
        "max_tokens": max_tokens,
        "shots": shots,
        "valid": call is not None,
        "right": right(call, name, args),
        "call": call and {"name": call["name"], "args": call["args"]},
        "text": message.content,
        "seed_answer": meta["seed_answer"],
        "seed_valid": parse_tool_call(meta["seed_answer"] or "", FORCED) is not None,
        "final_reward": meta["final_reward"],
        "generated_tokens": meta["generated_tokens"],
        "seconds": round(time.perf_counter() - start, 1),
    }


def key(row: dict[str, Any]) -> tuple[str, int, int, int, int]:
    return row["arm"], row["prompt"], row["seed"], row["max_tokens"], row.get("shots", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--shots", type=int, nargs="+", default=[0], choices=[0, 1])
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if args.out.exists():
        rows = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
        done = {key(r): r for r in rows}
    for shots in args.shots:
        for seed in range(args.seeds):
            for arm in args.arms:
                for index in range(len(PROMPTS)):
                    if (arm, index, seed, args.max_tokens, shots) in done:
                        continue
                    row = run(arm, index, seed, args.max_tokens, shots)
                    done[key(row)] = row
                    with args.out.open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(row) + "\n")
                    shown = row["call"] or repr(row["text"][:60])
                    print(
                        f"{shots}-shot {arm:18} p{index} s{seed} valid={row['valid']!s:5} {shown}"
                    )
    print(f"\nmax_tokens={args.max_tokens}, seeds={args.seeds}, {len(PROMPTS)} prompts")
    print("| shots | arm | answers | valid | right call | seed answer valid | mean s/answer |")
    print("|---|---|---|---|---|---|---|")
    for shots in args.shots:
        for arm in args.arms:
            rows = [
                r
                for r in done.values()
                if r["arm"] == arm
                and r["max_tokens"] == args.max_tokens
                and r["seed"] < args.seeds
                and r.get("shots", 0) == shots
            ]
            if not rows:
                continue
            n = len(rows)
            valid = sum(r["valid"] for r in rows)
            good = sum(r["right"] for r in rows)
            seeds_ok = sum(r["seed_valid"] for r in rows)
            secs = sum(r["seconds"] for r in rows) / n
            print(
                f"| {shots} | {arm} | {n} | {valid}/{n} = {valid / n:.0%} | {good}/{n} "
                f"| {seeds_ok}/{n} | {secs:.0f} |"
            )


if __name__ == "__main__":
    main()
