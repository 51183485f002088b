"""Command-line arguments shared by ``darwin run`` and ``darwin generate``, declared once.

The DARWIN knobs are derived from :class:`DarwinConfig` (their types, defaults and help), and
the model arguments (where the policy and the reward model run) make one
:class:`~langchain_darwin.search.SearchService`, so the commands cannot drift apart.
"""

from __future__ import annotations

import argparse
import os
import types
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from langchain_darwin.config import DEFAULT_MODEL, DarwinConfig
from langchain_darwin.engines import EngineSpec

if TYPE_CHECKING:
    from langchain_darwin.search import SearchService

#: Where a served deployment's API key is read from when ``--api-key`` is not given.
API_KEY_ENV = "DARWIN_API_KEY"


def _knob_arguments(annotation: Any) -> dict[str, Any]:
    """argparse keywords for a DarwinConfig field's type (optional types lose their None)."""
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [a for a in get_args(annotation) if a is not type(None)]
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if get_origin(annotation) is Literal:
        choices = get_args(annotation)
        return {"choices": choices, "type": type(choices[0])}
    if get_origin(annotation) is list:
        return {"action": "append", "type": get_args(annotation)[0], "metavar": "TEXT"}
    return {"type": annotation, "metavar": {int: "N", float: "X"}.get(annotation)}


def _shown(default: Any) -> str:
    """A default as help shows it: on/off for switches only (``1 == True`` in Python, so a
    lookup keyed by True would call an integer knob's default 1 "on")."""
    if default is None:
        return "none"
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default)


def add_knob_arguments(
    parser: argparse.ArgumentParser, skip: Collection[str] = ()
) -> argparse._ArgumentGroup:
    """One ``--flag`` per DarwinConfig knob (default None: unset knobs keep their defaults)."""
    group = parser.add_argument_group("DARWIN knobs (DarwinConfig; defaults follow the paper)")
    for name, info in DarwinConfig.model_fields.items():
        if name in skip:
            continue
        help_text = f"{info.description} (default: {_shown(info.get_default())})"
        help_text = help_text.replace("%", "%%")
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=None,
            help=help_text,
            **_knob_arguments(info.annotation),
        )
    return group


def knobs_from(args: argparse.Namespace, skip: Collection[str] = ()) -> dict[str, Any]:
    """The knobs given on the command line."""
    return {
        k: getattr(args, k)
        for k in DarwinConfig.model_fields
        if k not in skip and getattr(args, k, None) is not None
    }


def add_model_arguments(parser: argparse.ArgumentParser, api_key_flag: str = "--api-key") -> None:
    """Which policy and reward model, and where they run (in process or on vLLM servers).
    ``api_key_flag`` names the vLLM servers' key flag (``darwin serve`` keeps ``--api-key``
    for its own key)."""
    group = parser.add_argument_group("models")
    group.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="policy: 'default' (embedded SmolLM2-135M-Instruct), a local folder or a cached "
        "hub id; with --base-url, the name the server serves (default: %(default)s)",
    )
    group.add_argument(
        "--base-url",
        help="run the policy on a vLLM server's OpenAI-compatible API, e.g. "
        "http://127.0.0.1:8000/v1 (default: in process)",
    )
    group.add_argument(
        api_key_flag,
        dest="api_key",
        help=f"API key of the vLLM servers (default: ${API_KEY_ENV}, if set)",
    )
    group.add_argument(
        "--timeout", type=float, help="seconds per request to a server (default: httpx's)"
    )
    group.add_argument(
        "--max-retries", type=int, help="retries per failed request to a server (default: 2)"
    )
    group.add_argument(
        "--reward-model",
        help="a sequence-classifier reward model: a folder or cached hub id, or with "
        "--reward-base-url the name its server serves (default: the offline proxy reward)",
    )
    group.add_argument(
        "--reward-base-url",
        help="score with a reward model served by vLLM (--runner pooling) at this URL",
    )
    group.add_argument("--device", help="torch device (default: cuda if available, else cpu)")


def engine_spec(args: argparse.Namespace) -> EngineSpec:
    """Where the policy runs, from :func:`add_model_arguments`'s flags."""
    return EngineSpec(
        model=args.model,
        base_url=args.base_url,
        api_key=args.api_key or os.environ.get(API_KEY_ENV),
        timeout=args.timeout,
        max_retries=args.max_retries,
        device=args.device,
    )


def reward_spec(args: argparse.Namespace) -> Any:
    """The reward model as ``reward_model=`` takes it: None (the offline default), a folder or
    hub id, or a :class:`ServedReward` with ``--reward-base-url``."""
    if not args.reward_base_url:
        return args.reward_model
    if not args.reward_model:
        raise ValueError("--reward-base-url needs --reward-model: the name the server serves")
    from langchain_darwin.rewards import ServedReward

    return ServedReward(
        args.reward_base_url,
        args.reward_model,
        api_key=args.api_key or os.environ.get(API_KEY_ENV),
        timeout=args.timeout,
        max_retries=args.max_retries,
    )


def search_service(args: argparse.Namespace, reward: Any = None) -> SearchService:
    """The search service the flags describe (``reward`` given: it replaces the flags')."""
    from langchain_darwin.search import SearchService

    return SearchService(engine_spec(args), reward if reward is not None else reward_spec(args))


def quiet_transformers() -> None:
    """Weight-loading progress bars and notices would clutter the commands' progress display."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
