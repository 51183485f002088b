"""``darwin serve``: DARWIN behind an OpenAI-compatible HTTP API, on uvicorn.

    darwin serve --port 8000 --max-tokens 128
    darwin serve --base-url http://vllm:8000/v1 --model policy \\
        --reward-base-url http://vllm-rm:8001/v1 --reward-model rm --api-key "$KEY"

The model flags are ``darwin``'s (``--api-key`` is this server's own key here; the vLLM
servers' key is ``--upstream-api-key``); every DARWIN knob flag sets the server's default,
which a request's ``darwin`` object overrides. Wired as ``add_arguments`` + ``run`` so the
command can sit under any sub-command parser.
"""

from __future__ import annotations

import argparse
import os
import sys

from pydantic import ValidationError

from langchain_darwin.cli.args import (
    add_knob_arguments,
    add_model_arguments,
    knobs_from,
    search_service,
)
from langchain_darwin.config import DarwinConfig

HELP = "serve DARWIN behind an OpenAI-compatible HTTP API (FastAPI on uvicorn)"
#: Where the server's own API key is read from when ``--api-key`` is not given.
SERVE_API_KEY_ENV = "DARWIN_SERVE_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    group.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    group.add_argument(
        "--api-key",
        dest="serve_api_key",
        help=f"key clients must send as 'Authorization: Bearer <key>' (default: "
        f"${SERVE_API_KEY_ENV}; neither: no key is asked)",
    )
    group.add_argument(
        "--served-model-name",
        default="darwin",
        help="the model id clients name in requests and /v1/models (default: %(default)s)",
    )
    group.add_argument(
        "--max-concurrent",
        type=int,
        default=4,
        help="searches running at once (default: %(default)s)",
    )
    group.add_argument(
        "--queue",
        type=int,
        default=16,
        help="requests waiting for a slot before new ones get 429 (default: %(default)s)",
    )
    group.add_argument(
        "--log-level", default="info", help="uvicorn's log level (default: %(default)s)"
    )
    add_model_arguments(parser, api_key_flag="--upstream-api-key")
    add_knob_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 2 for bad flags (said on stderr), 0 after a clean stop."""
    import uvicorn

    from langchain_darwin.openai_api import Searches, ServeSettings, create_app

    if args.max_concurrent < 1 or args.queue < 0:
        print("darwin serve: error: --max-concurrent >= 1 and --queue >= 0", file=sys.stderr)
        return 2
    try:
        config = DarwinConfig(**knobs_from(args))
        service = search_service(args)
    except (ValidationError, ValueError, OSError) as err:
        print(f"darwin serve: error: {err}", file=sys.stderr)
        return 2
    settings = ServeSettings(
        model_name=args.served_model_name,
        api_key=args.serve_api_key or os.environ.get(SERVE_API_KEY_ENV) or None,
        max_concurrent=args.max_concurrent,
        queue=args.queue,
    )
    searches = Searches(service, config, args.max_concurrent)
    app = create_app(searches, settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
