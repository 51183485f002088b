"""``darwin generate``: datasets in, AlpacaEval-compatible JSONL out, resumable."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from langchain_darwin import cli
from langchain_darwin import generate as gen
from langchain_darwin.baselines import METHODS
from langchain_darwin.rewards import CallableReward
from langchain_darwin.search import SearchService
from tests.fake_engine import FakeEngine

FAST = {"max_tokens": 12, "replacement_period": 6}
PROMPTS = ["Tell me about eggs", "Describe a cat", "Name a colour"]


def vowels(conversation, answer: str) -> float:
    return float(sum(ch in "aeiou " for ch in answer))


def write_jsonl(path: Path, items: list[object]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(tiny_dirs, src: Path, out: Path, **kwargs) -> dict:
    options = {"model": str(tiny_dirs[0]), "reward_model": vowels, "progress": False, **FAST}
    return gen.generate(src, out, **{**options, **kwargs})


# -- input formats (no model) -------------------------------------------------------------


def test_reads_every_input_format(tmp_path: Path) -> None:
    plain = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "x", "id": 7}, {"prompt": "y"}])
    mt = write_jsonl(
        tmp_path / "q.jsonl",
        [{"question_id": 81, "category": "writing", "turns": ["first", "second"]}],
    )
    alpaca = tmp_path / "eval.json"
    alpaca.write_text(
        json.dumps(
            [{"instruction": "z", "output": "gpt4 says", "generator": "gpt4", "dataset": "oasst"}]
        )
    )
    assert gen.read_prompts(plain) == [
        {"instruction": "x", "extra": {"id": 7}},
        {"instruction": "y", "extra": {}},
    ]
    assert gen.read_prompts(mt) == [
        {"instruction": "first", "extra": {"question_id": 81, "category": "writing"}}
    ]
    # the reference model's output and generator never leak into our records
    assert gen.read_prompts(alpaca) == [{"instruction": "z", "extra": {"dataset": "oasst"}}]


def test_bad_inputs_say_where(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "ok"}\n{"question": "no field"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: no 'instruction'"):
        gen.read_prompts(bad)
    bad.write_text('{"instruction": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not JSON"):
        gen.read_prompts(bad)


# -- resume bookkeeping (no model) ----------------------------------------------------------


def test_scan_output_repairs_a_truncated_last_line(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    good = json.dumps({"index": 0, "instruction": "a"}) + "\n"
    out.write_text(good + '{"index": 1, "instr')
    assert gen.scan_output(out) == [{"index": 0, "instruction": "a"}]
    assert out.read_text() == good  # the torn line is gone, the finished row is kept
    out.write_text(good + "garbage\n")  # a complete but unreadable last line: redone too
    assert len(gen.scan_output(out)) == 1 and out.read_text() == good
    assert gen.scan_output(tmp_path / "missing.jsonl") == []


def test_scan_output_never_drops_rows_before_damage(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    text = '{"index": 0}\nbroken\n{"index": 1}\n'
    out.write_text(text)
    with pytest.raises(gen.ResumeError, match=":2 is damaged"):
        gen.scan_output(out)
    assert out.read_text() == text


def test_output_of_another_input_is_refused(tiny_dirs, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": p} for p in PROMPTS])
    out = tmp_path / "out.jsonl"
    write_jsonl(out, [{"index": 0, "instruction": "something else", "generator": "g"}])
    with pytest.raises(gen.ResumeError, match="different instruction"):
        run(tiny_dirs, src, out, generator="g")
    argv = ["--input", str(src), "--output", str(out), "--quiet", "--generator", "g"]
    assert cli.main(["generate", *argv]) == 2
    # rows of another method or budget are not silently taken as done
    write_jsonl(out, [{"index": 0, "instruction": PROMPTS[0], "generator": "tiny-policy-darwin"}])
    with pytest.raises(gen.ResumeError, match="another model, method or budget"):
        run(tiny_dirs, src, out, method="best_of_n", budget=5)


# -- generation on tiny models ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["instruction", "prompt", "mt_bench", "alpaca_json"])
def test_generate_writes_alpaca_eval_records(tiny_dirs, tmp_path: Path, fmt: str) -> None:
    if fmt == "alpaca_json":
        src = tmp_path / "eval.json"
        src.write_text(json.dumps([{"instruction": p, "dataset": "toy"} for p in PROMPTS[:2]]))
    elif fmt == "mt_bench":
        items = [{"question_id": 81 + i, "turns": [p, "again"]} for i, p in enumerate(PROMPTS[:2])]
        src = write_jsonl(tmp_path / "question.jsonl", items)
    else:
        src = write_jsonl(tmp_path / "in.jsonl", [{fmt: p} for p in PROMPTS[:2]])
    out = tmp_path / "out.jsonl"
    summary = run(tiny_dirs, src, out, method="darwin", budget=5, seed=3)
    assert summary["total"] == summary["written"] == 2 and summary["skipped"] == 0
    records = read_jsonl(out)
    assert [r["instruction"] for r in records] == PROMPTS[:2]
    assert [r["index"] for r in records] == [0, 1]
    for record in records:
        assert isinstance(record["output"], str)
        assert record["generator"] == f"{Path(tiny_dirs[0]).name}-darwin-n5"
        assert record["method"] == "darwin"
        assert record["reward"] == vowels(None, record["output"])
        assert record["seed_reward"] == vowels(None, record["seed_answer"])
        assert record["reward"] >= record["seed_reward"]
        assert record["darwin"]["final_reward"] == record["reward"]
        assert record["darwin"]["config"]["iterations"] == 1
    if fmt == "mt_bench":
        assert [r["question_id"] for r in records] == [81, 82]
    if fmt == "alpaca_json":
        assert all(r["dataset"] == "toy" for r in records)


def test_resume_skips_done_rows_and_redoes_a_torn_one(tiny_dirs, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": p} for p in PROMPTS])
    full = tmp_path / "full.jsonl"
    run(tiny_dirs, src, full, method="best_of_n", budget=5, seed=11)
    expected = read_jsonl(full)

    out = tmp_path / "out.jsonl"
    run(tiny_dirs, src, out, method="best_of_n", budget=5, seed=11, limit=1)
    first = out.read_text()
    with out.open("a") as fh:  # a crash in the middle of writing row 1
        fh.write(full.read_text().splitlines()[1][:40])
    seen = []
    summary = run(tiny_dirs, src, out, method="best_of_n", budget=5, seed=11, on_row=seen.append)
    assert summary == {**summary, "total": 3, "skipped": 1, "written": 2}
    assert [r["index"] for r in seen] == [1, 2]
    assert out.read_text().startswith(first)  # the row written before was never touched
    got = read_jsonl(out)
    assert [r["index"] for r in got] == [0, 1, 2]
    # per-row seeds: the resumed run wrote what the uninterrupted one did
    assert [r["output"] for r in got] == [r["output"] for r in expected]
    again = run(tiny_dirs, src, out, method="best_of_n", budget=5, seed=11)
    assert (again["skipped"], again["written"]) == (3, 0)


def test_main_flags_and_json_export(tiny_dirs, tmp_path: Path, capsys) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": p} for p in PROMPTS[:2]])
    out, exported = tmp_path / "out.jsonl", tmp_path / "out.json"
    argv = [
        "--input", str(src), "--output", str(out), "--model", str(tiny_dirs[0]),
        "--reward-model", str(tiny_dirs[1]), "--method", "sample_replace", "--budget", "10",
        "--max-tokens", "12", "--replacement-period", "4", "--seed", "5", "--quiet",
        "--export-json", str(exported), "--generator", "mine",
    ]  # fmt: skip
    assert cli.main(["generate", *argv]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == 2
    records = json.loads(exported.read_text())
    assert records == read_jsonl(out)
    config = records[0]["darwin"]["config"]
    assert (config["iterations"], config["mutation"], config["replacement"]) == (2, False, True)
    assert (config["max_tokens"], config["replacement_period"]) == (12, 4)
    assert [r["darwin"]["seed"] for r in records] == [5, 6]
    assert all(r["generator"] == "mine" for r in records)


def test_every_method_is_accepted(tiny_dirs, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": PROMPTS[0]}])
    for method in METHODS:
        out = tmp_path / f"{method}.jsonl"
        run(tiny_dirs, src, out, method=method, budget=5, seed=0, max_tokens=8)
        (record,) = read_jsonl(out)
        assert record["method"] == method
        assert record["darwin"]["config"]["iterations"] == (0 if method == "sample" else 1)


def test_generate_subcommand_parses_its_flags() -> None:
    from langchain_darwin.cli import generate as cli_generate

    args = cli.build_parser().parse_args(
        ["generate", "-i", "a.jsonl", "-o", "b.jsonl", "--budget", "10", "--concurrency", "4"]
    )
    assert args.func is cli_generate.run and args.budget == 10 and args.method == "darwin"
    assert args.concurrency == 4
    assert cli.build_parser().parse_args(["generate", "-i", "a", "-o", "b"]).concurrency == 1


def test_concurrency_below_one_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["generate", "-i", "a.jsonl", "-o", "b.jsonl", "--concurrency", "0"])
    assert exit_info.value.code == 2
    assert "--concurrency: must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        gen.generate("a.jsonl", "b.jsonl", concurrency=0)


# -- concurrency: order and resume --------------------------------------------------------------


class SlowFirstRows:
    """Answers row i after sleeping longer for earlier rows, so rows finish in reverse order;
    records which rows ran at once, and whether it was cancelled."""

    def __init__(self, rows: int, fail_at: int | None = None) -> None:
        self.rows, self.fail_at = rows, fail_at
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.finished: list[int] = []
        self.cancelled = False

    def __call__(self, index: int) -> dict:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.02 * (self.rows - index))
        with self.lock:
            self.running -= 1
            self.finished.append(index)
        if index == self.fail_at:
            raise RuntimeError(f"row {index} failed")
        return {"index": index}

    def cancel(self) -> None:
        self.cancelled = True


def test_rows_come_out_in_input_order_whatever_order_they_finish() -> None:
    rows = SlowFirstRows(8)
    got = [r["index"] for r in gen.in_input_order(range(8), rows, concurrency=4)]
    assert got == list(range(8))
    assert rows.most_at_once == 4  # four at once, never more
    assert rows.finished[:4] != sorted(rows.finished[:4])  # they did finish out of order
    sequential = SlowFirstRows(4)
    assert [r["index"] for r in gen.in_input_order(range(4), sequential)] == [0, 1, 2, 3]
    assert sequential.most_at_once == 1 and sequential.finished == [0, 1, 2, 3]


def test_a_failing_row_stops_the_rest_and_keeps_the_rows_before_it() -> None:
    rows = SlowFirstRows(16, fail_at=1)
    got = []
    with pytest.raises(RuntimeError, match="row 1 failed"):
        for record in gen.in_input_order(range(16), rows, concurrency=4):
            got.append(record["index"])
    assert got == [0]  # rows after the failed one are not written, even if finished
    assert rows.cancelled  # the running searches were told to stop
    assert len(rows.finished) < 16  # rows not yet started never ran


def test_concurrent_rows_write_what_one_at_a_time_writes(tiny_dirs, tmp_path: Path) -> None:
    prompts = [*PROMPTS, "Say hello", "Count to three", "Name a fruit"]
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": p} for p in prompts])
    one, four = tmp_path / "one.jsonl", tmp_path / "four.jsonl"
    run(tiny_dirs, src, one, method="darwin", budget=5, seed=7)
    seen: list[dict] = []
    summary = run(
        tiny_dirs, src, four, method="darwin", budget=5, seed=7, concurrency=4, on_row=seen.append
    )
    assert (summary["written"], summary["skipped"]) == (6, 0)
    assert [r["index"] for r in seen] == list(range(6))
    expected, got = read_jsonl(one), read_jsonl(four)
    assert [r["index"] for r in got] == list(range(6))
    for a, b in zip(expected, got, strict=True):
        a.pop("seconds"), b.pop("seconds")
        a["darwin"].pop("seconds", None), b["darwin"].pop("seconds", None)
        assert a == b  # per-row seeds: the same answers, rewards and searches


def fake_run(src: Path, out: Path, **kwargs) -> dict:
    """generate() on the fake engine: fast, deterministic, no torch."""
    service = SearchService(FakeEngine(), CallableReward(vowels))
    options = {"service": service, "progress": False, "method": "darwin", "budget": 5, **FAST}
    return gen.generate(src, out, **{**options, **kwargs})


def test_concurrent_resume_skips_done_rows_and_redoes_a_torn_one(tmp_path: Path) -> None:
    prompts = [f"Question number {i}" for i in range(12)]
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": p} for p in prompts])
    full = tmp_path / "full.jsonl"
    fake_run(src, full, seed=3)  # one row at a time, uninterrupted
    expected = read_jsonl(full)
    assert [r["generator"] for r in expected] == ["FakeEngine-darwin-n5"] * 12

    out = tmp_path / "out.jsonl"
    fake_run(src, out, seed=3, limit=5, concurrency=4)
    first = out.read_text()
    with out.open("a") as fh:  # a crash in the middle of writing row 5
        fh.write(full.read_text().splitlines()[5][:40])
    seen: list[int] = []
    summary = fake_run(src, out, seed=3, concurrency=4, on_row=lambda r: seen.append(r["index"]))
    assert (summary["skipped"], summary["written"]) == (5, 7)
    assert seen == list(range(5, 12))
    assert out.read_text().startswith(first)  # the rows written before were never touched
    got = read_jsonl(out)
    assert [r["index"] for r in got] == list(range(12))
    for a, b in zip(expected, got, strict=True):
        assert {**a, "seconds": 0} == {**b, "seconds": 0}  # what an uninterrupted run wrote
    again = fake_run(src, out, seed=3, concurrency=4)
    assert (again["skipped"], again["written"]) == (12, 0)


def test_ctrl_c_keeps_the_rows_written_and_a_rerun_finishes(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": f"Q{i}"} for i in range(8)])
    out = tmp_path / "out.jsonl"

    def interrupt_after_two(record: dict) -> None:
        if record["index"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fake_run(src, out, seed=1, concurrency=4, on_row=interrupt_after_two)
    assert [r["index"] for r in read_jsonl(out)] == [0, 1]  # in order, nothing half-written
    summary = fake_run(src, out, seed=1, concurrency=4)
    assert (summary["skipped"], summary["written"]) == (2, 6)
    assert [r["index"] for r in read_jsonl(out)] == list(range(8))


def test_service_and_model_arguments_do_not_mix(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": "hi"}])
    with pytest.raises(ValueError, match="either service= or model="):
        fake_run(src, tmp_path / "out.jsonl", model="default")
