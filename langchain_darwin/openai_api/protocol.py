"""OpenAI's chat-completions schema as DARWIN reads it: the request model, what DARWIN cannot
honour (each rejected by name, never ignored), and errors in OpenAI's shape.

A request's ``darwin`` object (the ``openai`` SDK's ``extra_body={"darwin": {...}}``) holds
DARWIN knobs, validated by :class:`DarwinConfig`; OpenAI's own ``max_tokens``,
``temperature``, ``seed`` and ``stop`` map onto the knobs of the same meaning.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langchain_darwin.config import DarwinConfig

#: ``darwin`` keys besides DarwinConfig's knobs: the tool-call validity term's weight.
EXTRA_DARWIN_KEYS = frozenset({"validity_weight"})


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


class Message(BaseModel):
    """One chat message; ``developer`` is read as ``system``."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None

    def as_openai(self) -> dict[str, Any]:
        out = self.model_dump(exclude_none=True, exclude={"refusal"})
        if out["role"] == "developer":
            out["role"] = "system"
        out.setdefault("content", "")
        return out


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False
    include_obfuscation: bool | None = None


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``. Fields DARWIN cannot honour are declared so
    that a request using them is refused naming them (see :func:`unsupported`); any field
    OpenAI does not define is refused as unrecognised."""

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, gt=0)
    max_completion_tokens: int | None = Field(None, gt=0)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None  # a permission: DARWIN makes at most one call
    user: str | None = None  # an end-user id for the caller's records; never used here
    darwin: dict[str, Any] | None = None
    # OpenAI parameters DARWIN cannot honour: accepted only at their neutral values
    top_p: float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    verbosity: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


#: (parameter, its neutral values, why DARWIN cannot honour anything else)
_NEUTRAL: tuple[tuple[str, tuple[Any, ...], str], ...] = (
    (
        "n",
        (None, 1),
        "DARWIN returns one answer per request (its search already weighs many "
        "candidates); send n=1 or leave it out",
    ),
    (
        "top_p",
        (None, 1, 1.0),
        "DARWIN samples with temperature and top-k (darwin.top_k); "
        "nucleus sampling is not implemented",
    ),
    (
        "logprobs",
        (None, False),
        "the answer is chosen by a search over beams, so there is no "
        "one sampling distribution to report",
    ),
    ("top_logprobs", (None, 0), "log-probabilities are not reported (see logprobs)"),
    ("frequency_penalty", (None, 0, 0.0), "penalties are not implemented"),
    ("presence_penalty", (None, 0, 0.0), "penalties are not implemented"),
    ("logit_bias", (None, {}), "logit biases are not implemented"),
    ("functions", (None,), "the legacy functions API is not supported: send tools"),
    ("function_call", (None,), "the legacy functions API is not supported: send tool_choice"),
    ("store", (None, False), "nothing is stored"),
    ("metadata", (None, {}), "nothing is stored, so metadata has nowhere to go"),
    ("service_tier", (None, "auto", "default"), "there is one service tier"),
    ("reasoning_effort", (None,), "DARWIN's effort is set by its knobs (darwin.iterations ...)"),
    ("modalities", (None, ["text"]), "DARWIN answers in text only"),
    ("audio", (None,), "DARWIN answers in text only"),
    ("prediction", (None,), "predicted outputs are not supported"),
    ("web_search_options", (None,), "web search is not supported"),
    ("verbosity", (None,), "not supported: set darwin.max_tokens"),
    ("prompt_cache_key", (None,), "not supported (prefix caching is automatic)"),
    ("safety_identifier", (None,), "not supported"),
)


def unsupported(request: ChatCompletionRequest) -> ApiError | None:
    """The first parameter the request sets to something DARWIN cannot honour, as a 400."""
    for name, neutral, why in _NEUTRAL:
        value = getattr(request, name)
        if value not in neutral:
            return bad_request(f"{name}={value!r} is not supported: {why}", param=name)
    fmt = request.response_format
    if fmt is not None and fmt.get("type") != "text":
        return bad_request(
            f"response_format type {fmt.get('type')!r} is not supported: send tools with "
            "tool_choice naming one tool to get JSON that validates against its schema",
            param="response_format",
        )
    return None


def parse_request(body: bytes) -> ChatCompletionRequest:
    """The request, or a 400 naming what is wrong (bad JSON, a field, an unknown field)."""
    try:
        return ChatCompletionRequest.model_validate_json(body)
    except ValidationError as err:
        raise schema_error(err) from None


def schema_error(err: ValidationError) -> ApiError:
    first = err.errors()[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    if first["type"] == "json_invalid":
        return bad_request(f"the body is not valid JSON: {first['msg']}", code="invalid_json")
    if first["type"] == "extra_forbidden":
        return bad_request(f"unrecognized request argument supplied: {param}", param=param)
    if first["type"] in ("model_type", "dict_type") and not first["loc"]:
        return bad_request("the body must be a JSON object (a chat completion request)")
    return bad_request(f"{param}: {first['msg']}", param=param)


def _same(name: str, given: Any, knob: Any) -> None:
    if given is not None and knob is not None and given != knob:
        raise bad_request(
            f"{name}={given!r} and darwin.{name}={knob!r} disagree; set it in one place",
            param=name,
        )


def search_knobs(request: ChatCompletionRequest, base: DarwinConfig) -> DarwinConfig:
    """The search's DarwinConfig: the server's defaults, then OpenAI's parameters, then the
    ``darwin`` knobs; an unknown knob or a bad value is a 400 naming it."""
    darwin = dict(request.darwin or {})
    for key in EXTRA_DARWIN_KEYS:
        darwin.pop(key, None)
    unknown = sorted(set(darwin) - set(DarwinConfig.model_fields))
    if unknown:
        raise bad_request(
            f"unknown DARWIN knob(s) {unknown} in darwin; known knobs: "
            f"{sorted(DarwinConfig.model_fields)} (and {sorted(EXTRA_DARWIN_KEYS)})",
            param=f"darwin.{unknown[0]}",
        )
    if request.max_tokens and request.max_completion_tokens:
        _same("max_tokens", request.max_tokens, request.max_completion_tokens)
    stop = [request.stop] if isinstance(request.stop, str) else request.stop
    mapped = {
        "max_tokens": request.max_completion_tokens or request.max_tokens,
        "temperature": request.temperature,
        "seed": request.seed,
        "stop": stop or None,
    }
    for name, value in mapped.items():
        _same(name, value, darwin.get(name))
    knobs = {**{k: v for k, v in mapped.items() if v is not None}, **darwin}
    try:
        return base.merged(**knobs)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        param = f"darwin.{where}" if where in darwin else (where or "darwin")
        raise bad_request(f"{param}: {first['msg']}", param=param) from None


def validity_weight(request: ChatCompletionRequest, default: float) -> float:
    value = (request.darwin or {}).get("validity_weight", default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise bad_request(
            f"darwin.validity_weight must be a number >= 0, got {value!r}",
            param="darwin.validity_weight",
        )
    return float(value)
