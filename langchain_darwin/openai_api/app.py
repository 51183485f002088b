"""The OpenAI-compatible HTTP API over DARWIN searches (FastAPI, served by uvicorn).

``POST /v1/chat/completions`` (plain or ``stream=true`` server-sent events), ``GET /v1/models``,
``GET /health`` (alive), ``GET /ready`` (policy and reward loaded and their servers answering),
``GET /metrics`` (Prometheus text). Every request is checked in full (key, JSON, schema,
knobs, tools, messages, context window) before it takes a search slot; every error is
answered in OpenAI's ``{"error": {...}}`` shape.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException

from langchain_darwin.graph.state import DarwinOutput
from langchain_darwin.openai_api.admission import Admission, QueueFull
from langchain_darwin.openai_api.errors import search_error
from langchain_darwin.openai_api.metrics import Metrics
from langchain_darwin.openai_api.protocol import (
    ApiError,
    ChatCompletionRequest,
    bad_request,
    parse_request,
    search_knobs,
    unsupported,
    validity_weight,
)
from langchain_darwin.openai_api.responses import (
    Envelope,
    answer_chunks,
    answer_of,
    completion,
    progress_chunk,
    sse,
)
from langchain_darwin.openai_api.searches import OnEvent, Searches
from langchain_darwin.search import PreparedSearch
from langchain_darwin.tools import ToolSetup
from langchain_darwin.usage import generated_tokens, prefilled_positions

log = logging.getLogger("langchain_darwin.serve")
T = TypeVar("T")
#: Status recorded for a request whose client left before its answer (nginx's convention).
CLIENT_GONE = 499


@dataclass(frozen=True)
class ServeSettings:
    """How the server admits requests. ``api_key`` (never shown in a repr or a log) is
    required as ``Authorization: Bearer <key>`` on ``/v1/*`` when set."""

    model_name: str = "darwin"
    api_key: str | None = field(default=None, repr=False)
    max_concurrent: int = 4
    queue: int = 16
    validity_weight: float = 1.0


class ClientGone(Exception):
    """The client disconnected before its answer."""


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (its body already read: only a disconnect is left)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result, unless the client leaves first: then ``work`` is cancelled (and
    waited for) and :class:`ClientGone` raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.wait([task])
        raise ClientGone()
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


class DarwinAPI:
    """The routes' state: settings, searches, admission and metrics."""

    def __init__(self, searches: Searches, settings: ServeSettings) -> None:
        self.searches = searches
        self.settings = settings
        self.admission = Admission(settings.max_concurrent, settings.queue)
        self.metrics = Metrics()

    # -- checks before a slot ---------------------------------------------------------------

    def authorize(self, request: Request) -> None:
        key = self.settings.api_key
        if key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "missing API key: send the header 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )
        if not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise ApiError(401, "incorrect API key provided", code="invalid_api_key")

    def checked(self, request: ChatCompletionRequest) -> tuple[Any, ToolSetup | None, float]:
        """(config, tools, validity weight) of a valid request; a 4xx otherwise."""
        if request.model != self.settings.model_name:
            raise ApiError(
                404,
                f"model {request.model!r} is not served here; this server serves "
                f"{self.settings.model_name!r} (GET /v1/models)",
                param="model",
                code="model_not_found",
            )
        problem = unsupported(request)
        if problem is not None:
            raise problem
        config = search_knobs(request, self.searches.defaults)
        try:
            tools = ToolSetup.of(request.tools, request.tool_choice)
        except (ValueError, TypeError) as err:
            param = "tool_choice" if "tool_choice" in str(err) else "tools"
            raise bad_request(str(err), param=param) from None
        weight = validity_weight(request, self.settings.validity_weight)
        return config, tools, weight

    # -- the search -------------------------------------------------------------------------

    async def search(self, search: PreparedSearch, on_event: OnEvent | None) -> DarwinOutput:
        """Run a search that holds a slot; the slot is released when it has stopped."""
        started = time.monotonic()
        try:
            state = await self.searches.run(search, on_event)
        except asyncio.CancelledError:
            self.metrics.cancelled += 1
            self.admission.release()
            raise
        except BaseException:
            self.admission.release()
            raise
        seconds = time.monotonic() - started
        self.admission.release(seconds)
        usage = state["usage"]
        self.metrics.searched(seconds, generated_tokens(usage), prefilled_positions(usage))
        return state

    async def complete(self, request: Request) -> Response:
        self.authorize(request)
        body = parse_request(await request.body())
        config, tools, weight = self.checked(body)
        messages = [m.as_openai() for m in body.messages]
        try:
            search = await asyncio.to_thread(self.searches.prepare, messages, config, tools, weight)
        except ApiError:
            raise
        except Exception as err:  # the policy or reward could not load or be reached
            raise search_error(err) from err
        try:
            await until_disconnected(request, self.admission.acquire())
        except QueueFull as busy:
            search.close()
            raise ApiError(
                429,
                f"all {self.admission.max_concurrent} search slots are busy and "
                f"{self.admission.queue} requests are queued; retry after "
                f"{busy.retry_after} s",
                type="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": str(busy.retry_after)},
            ) from None
        except BaseException:
            search.close()
            raise
        envelope = Envelope(self.settings.model_name)
        if body.stream:
            stream = self.stream(search, envelope, tools, body.include_usage)
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(stream, media_type="text/event-stream", headers=headers)
        try:
            state = await until_disconnected(request, self.search(search, None))
        except (ClientGone, ApiError):
            raise
        except Exception as err:
            raise search_error(err) from err
        return JSONResponse(completion(envelope, answer_of(state, tools)))

    async def stream(
        self,
        search: PreparedSearch,
        envelope: Envelope,
        tools: ToolSetup | None,
        include_usage: bool,
    ) -> AsyncIterator[bytes]:
        """Progress chunks while the search runs, then the answer; a client that leaves
        cancels the search (the response task is cancelled, and so is the search here)."""
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        task = asyncio.ensure_future(self.search(search, events.put_nowait))
        try:
            while not task.done() or not events.empty():
                getter = asyncio.ensure_future(events.get())
                await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield sse(progress_chunk(envelope, getter.result()))
                else:
                    getter.cancel()
            try:
                state = task.result()
            except Exception as err:
                yield sse(search_error(err).body())
            else:
                for piece in answer_chunks(envelope, answer_of(state, tools), include_usage):
                    yield sse(piece)
            yield sse("[DONE]")
        finally:
            if not task.done():
                task.cancel()
                with anyio.CancelScope(shield=True):  # wait for the search to stop
                    await asyncio.wait([task])

    # -- status endpoints -------------------------------------------------------------------

    async def ready(self) -> JSONResponse:
        try:
            await asyncio.to_thread(self.searches.check)
        except Exception as err:
            message = f"not ready: {type(err).__name__}: {err}"
            return error_response(ApiError(503, message, type="server_error", code="not_ready"))
        return JSONResponse({"status": "ready", "model": self.settings.model_name})

    def models(self) -> dict[str, Any]:
        model = {"id": self.settings.model_name, "object": "model", "owned_by": "darwin"}
        return {"object": "list", "data": [{**model, "created": 0}]}

    def record(self, status: int, err: ApiError | None = None) -> None:
        self.metrics.requests[status] += 1
        if err is not None and status < 500:
            self.metrics.rejections[err.code or err.type] += 1


def create_app(searches: Searches, settings: ServeSettings | None = None) -> FastAPI:
    """The server's ASGI app. Weights load (or servers are checked) in the background at
    start-up: ``/health`` answers at once, ``/ready`` once they are in."""
    api = DarwinAPI(searches, settings or ServeSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.ensure_future(asyncio.to_thread(searches.load))
        loading.add_done_callback(lambda t: t.cancelled() or t.exception())
        yield
        searches.close()

    app = FastAPI(
        title="DARWIN", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.darwin = api

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        return error_response(ApiError(exc.status_code, str(exc.detail), type=kind))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            response = await api.complete(request)
        except ApiError as err:
            api.record(err.status, err)
            return error_response(err)
        except ClientGone:
            api.record(CLIENT_GONE)
            return Response(status_code=CLIENT_GONE)
        api.record(response.status_code)
        return response

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        try:
            api.authorize(request)
        except ApiError as err:
            return error_response(err)
        return JSONResponse(api.models())

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        return await api.ready()

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        text = api.metrics.render(api.admission.running, api.admission.waiting)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return app
