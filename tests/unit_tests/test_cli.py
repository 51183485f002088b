"""The ``darwin`` command: flags generated from DarwinConfig, and real runs on tiny models."""

from __future__ import annotations

import json
import math
import re
import sys
import types
from pathlib import Path

import pytest

from langchain_darwin import cli
from langchain_darwin.cli import progress as cli_progress
from langchain_darwin.cli import run as cli_run
from langchain_darwin.cli.parser import COMMANDS, with_default_command
from langchain_darwin.cli.run import DEMO
from langchain_darwin.config import DarwinConfig
from langchain_darwin.graph.report import plain_json
from langchain_darwin.search import SearchService

SMALL = ["--max-tokens", "8", "--replacement-period", "4", "--seed", "0"]


def tiny_args(tiny_dirs: tuple[Path, Path], *extra: str) -> list[str]:
    policy_dir, rm_dir = tiny_dirs
    return ["hi there", "--model", str(policy_dir), "--reward-model", str(rm_dir), *SMALL, *extra]


def parse(*argv: str) -> DarwinConfig:
    args = cli.build_parser().parse_args(["run", "a prompt", *argv])
    return cli_run.config_from(args, args.command_parser)


def test_help_lists_every_knob_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    text, squeezed = " ".join(out.split()), "".join(out.split())  # undo argparse's wrapping
    for name, info in DarwinConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        assert flag in text
        assert "".join(info.description.split()) in squeezed
        if info.default is True:
            assert f"--no-{name.replace('_', '-')}" in text
    for flag in ["--model", "--reward-model", "--relevance-weight", "--tone-weight", "--demo"]:
        assert flag in text
    for flag in ["--compare", "--json", "--no-mutation", "--cache {kv,none}"]:
        assert flag in text


def test_help_shows_integer_defaults_as_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    """``1 == True`` in Python: the defaults 1 of --iterations, --n-mutations and
    --beams-per-instruction were once shown as "on", and 0.0 as "off"."""
    for command in ["run", "generate"]:
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        squeezed = " ".join(capsys.readouterr().out.split())
        knobs = squeezed.split("DARWIN knobs", 1)[1]  # past the usage line
        for name, info in DarwinConfig.model_fields.items():
            if name == "seed" and command == "generate":
                continue  # generate's own --seed (row i uses seed + i)
            default = info.get_default()
            if isinstance(default, bool):
                shown = "on" if default else "off"
            else:
                shown = "none" if default is None else str(default)
            flag = "--" + name.replace("_", "-")
            rest = re.split(f" {flag}[ ,]", knobs, maxsplit=1)[1].removeprefix(f" --no-{flag[2:]}")
            after = rest.split(" --", 1)[0]  # this flag's help, up to the next flag
            assert f"(default: {shown})" in after, (command, flag, after)
        assert (
            "--iterations N Mutation cycles (the paper's MC). 0 = plain sampling. (default: 1)"
            in knobs
        )


def test_a_prompt_first_runs_the_default_command() -> None:
    assert with_default_command(["How do I boil an egg?", "--demo"]) == [
        "run", "How do I boil an egg?", "--demo",
    ]  # fmt: skip
    assert with_default_command(["--demo", "hi"]) == ["run", "--demo", "hi"]
    for argv in (["generate", "-i", "x"], ["run", "hi"], ["--help"], ["-h"], []):
        assert with_default_command(argv) == argv
    # a prompt that is a command name goes after an explicit `run`
    assert cli.build_parser().parse_args(["run", "generate"]).prompt == "generate"


def test_a_command_module_plugs_in_with_one_entry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The slot ``darwin serve`` uses: a module with add_arguments and run, one COMMANDS entry."""
    module = types.ModuleType("darwin_echo", "Say the words back.\n\nAs many as given.")
    module.add_arguments = lambda parser: parser.add_argument("words", nargs="*")  # type: ignore[attr-defined]
    module.run = lambda args: len(args.words)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "darwin_echo", module)
    monkeypatch.setitem(COMMANDS, "echo", "darwin_echo")
    assert cli.main(["echo", "a", "b"]) == 2
    assert with_default_command(["echo", "a"]) == ["echo", "a"]  # a command now, not a prompt
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "echo      Say the words back." in capsys.readouterr().out


def test_top_level_help_names_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "run " in text and "generate " in text and "`darwin PROMPT ...` is" in text
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_flags_become_knobs() -> None:
    config = parse(
        "--iterations", "2", "--temperature", "0.5", "--no-mutation", "--finished-donors",
        "--cache", "none", "--stop", "END", "--stop", "\n\n", "--max-time", "30", "--seed", "4",
    )  # fmt: skip
    assert config.iterations == 2
    assert config.temperature == 0.5
    assert config.mutation is False and config.finished_donors is True
    assert config.cache == "none"
    assert config.stop == ["END", "\n\n"]
    assert config.max_time == 30.0 and config.seed == 4
    assert config.replacement is True  # untouched knobs keep the paper's defaults
    assert config.max_tokens == DarwinConfig().max_tokens


def test_demo_preset_and_explicit_flags_win() -> None:
    demo = parse("--demo")
    assert demo.max_tokens == DEMO["max_tokens"]
    assert (
        demo.replacement_period == DEMO["replacement_period"] != DarwinConfig().replacement_period
    )
    assert parse("--demo", "--max-tokens", "48").max_tokens == 48
    assert parse("--demo", "--replacement-period", "8").replacement_period == 8


def test_seed_is_always_drawn_so_compare_can_share_it() -> None:
    assert isinstance(parse().seed, int)


def test_invalid_knobs_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse("--survivors", "9")
    assert exit_info.value.code == 2
    assert "survivors" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse("--cache", "disk")
    with pytest.raises(SystemExit):
        parse("--max-tokens", "0")


def test_plain_json_turns_non_finite_floats_into_null() -> None:
    assert plain_json({"a": [-math.inf, 1.0, math.nan]}) == {"a": [None, 1.0, None]}


def test_json_run_prints_one_object(
    tiny_dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(tiny_args(tiny_dirs, "--json")) == 0
    out = capsys.readouterr().out
    result = json.loads(out)  # stdout holds the JSON object and nothing else
    assert {"answer", "reward", "seed_answer", "seed_reward", "darwin"} <= set(result)
    assert isinstance(result["answer"], str) and isinstance(result["seed_answer"], str)
    assert result["seed_answer"] == result["darwin"]["seed_answer"]
    meta = result["darwin"]
    assert result["reward"] == meta["final_reward"]
    assert result["seed_reward"] == meta["seed_reward"]
    assert meta["config"]["max_tokens"] == 8 and meta["seed"] == 0
    assert len(meta["cycle_rewards"]) == 1
    assert result["reward"] >= result["seed_reward"]  # the seed competes for the best answer
    summary = result["summary"]  # where the winner came from, best beam against the seed
    assert summary["from_seed"] == (meta["winner"]["source"] == "seed")
    assert summary["best_beam_reward"] == max(meta["cycle_rewards"])


def test_compare_shows_both_rewards(
    tiny_dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(tiny_args(tiny_dirs, "--compare")) == 0
    captured = capsys.readouterr()
    assert "DARWIN answer" in captured.out
    assert "seed reward" in captured.out and "final reward" in captured.out
    assert "winner: " in captured.out and " vs seed answer " in captured.out
    assert "plain reward" in captured.out
    assert "DARWIN" in captured.err and "plain" in captured.err  # progress went to stderr


def test_compare_json_has_the_plain_sample(
    tiny_dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(tiny_args(tiny_dirs, "--compare", "--json", "--quiet")) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    plain = result["plain"]
    assert plain["darwin"]["config"]["iterations"] == 0
    assert plain["darwin"]["seed"] == result["darwin"]["seed"]
    assert plain["darwin"]["cycle_rewards"] == []
    assert captured.err == ""


def test_ctrl_c_prints_the_best_answer_so_far(
    tiny_dirs: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed = cli_progress.Tracker.feed
    seen = {"score": 0}

    def interrupt_after_second_score(self: cli_progress.Tracker, mode: str, chunk: object) -> None:
        feed(self, mode, chunk)
        if mode == "custom" and chunk["step"] == "score":  # type: ignore[index]
            seen["score"] += 1
        if mode == "values" and seen["score"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_progress.Tracker, "feed", interrupt_after_second_score)
    assert cli.main(tiny_args(tiny_dirs, "--json", "-q")) == cli_run.INTERRUPTED
    result = json.loads(capsys.readouterr().out)
    assert result["interrupted"] is True
    assert isinstance(result["answer"], str) and isinstance(result["reward"], float)
    assert result["source"]


def test_ctrl_c_while_loading_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(SearchService, "prepare", interrupted)
    assert cli.main(["hi", "-q"]) == cli_run.INTERRUPTED
    assert "before any answer" in capsys.readouterr().err


def test_ctrl_c_during_compare_keeps_the_finished_darwin_answer(
    tiny_dirs: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed = cli_progress.Tracker.feed

    def interrupt_plain(self: cli_progress.Tracker, mode: str, chunk: object) -> None:
        if self.label == "plain":
            raise KeyboardInterrupt
        feed(self, mode, chunk)

    monkeypatch.setattr(cli_progress.Tracker, "feed", interrupt_plain)
    assert cli.main(tiny_args(tiny_dirs, "--compare", "--json", "-q")) == cli_run.INTERRUPTED
    result = json.loads(capsys.readouterr().out)
    assert "plain" not in result and result["reward"] == result["darwin"]["final_reward"]


def test_a_missing_model_folder_is_a_short_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["hi", "-q", "--model", "/no/such/folder"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("darwin: error:") and "does not exist" in err


def test_darwin_generate_subcommand_writes_records(tiny_dirs, tmp_path) -> None:
    import json as _json

    from langchain_darwin.cli import main as cli_main

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"instruction": "Tell me about eggs"}\n{"instruction": "Hi"}\n')
    args = ["generate", "--input", str(src), "--output", str(out), "--model", str(tiny_dirs[0])]
    args += ["--reward-model", str(tiny_dirs[1]), "--max-tokens", "8", "--seed", "1", "-q"]
    assert cli_main(args) == 0
    records = [_json.loads(line) for line in out.read_text().splitlines()]
    assert [r["instruction"] for r in records] == ["Tell me about eggs", "Hi"]
    assert all(isinstance(r["output"], str) and "darwin" in r for r in records)
