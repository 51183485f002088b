"""Tools and structured output, the DARWIN way: the tools go into the prompt, a validity term
joins the reward (an answer that parses and validates beats one that does not), and the winning
answer is parsed into ``tool_calls``.

The policy is asked for one JSON object, ``{"name": ..., "arguments": {...}}``. A reply is a
*valid call* when the first JSON object in it that names an offered tool (or, with a single
tool offered, that is the bare arguments) has arguments that validate against that tool's JSON
schema.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from langchain_core.messages import ToolCall
from langchain_core.messages.tool import tool_call
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_darwin.conversation import call_text
from langchain_darwin.rewards.base import Conversation, RewardModel

#: ``tool_choice`` values that force some call, and those that forbid one.
FORCING = frozenset({"any", "required"})
FORBIDDING = frozenset({"none"})
_DECODER = json.JSONDecoder()


def tool_spec(tool: Any) -> dict[str, Any]:
    """A tool (BaseTool, function, Pydantic model, TypedDict, JSON schema or OpenAI tool dict)
    as an OpenAI tool dict: ``{"type": "function", "function": {name, description,
    parameters}}``."""
    spec = convert_to_openai_tool(tool)
    function = spec.get("function")
    if not isinstance(function, dict) or not function.get("name"):
        raise ValueError(f"cannot bind {tool!r} as a tool: it has no function name")
    function.setdefault("parameters", {"type": "object", "properties": {}})
    return spec


def _name(spec: Mapping[str, Any]) -> str:
    return spec["function"]["name"]


def _choice_name(tool_choice: Any) -> str | None:
    """The tool a ``tool_choice`` names, if it names one."""
    if isinstance(tool_choice, str) and tool_choice not in FORCING | FORBIDDING | {"auto"}:
        return tool_choice
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
        if not isinstance(name, str):
            raise ValueError(f"tool_choice {dict(tool_choice)!r} names no tool")
        return name
    return None


@dataclass(frozen=True)
class ToolSetup:
    """What one call offers the policy: the tools it may call and whether it must call one."""

    tools: tuple[dict[str, Any], ...]
    required: bool

    @classmethod
    def of(cls, tools: Sequence[Any] | None, tool_choice: Any = None) -> ToolSetup | None:
        """``None`` when no tool is offered (no tools, or ``tool_choice="none"``).

        ``tool_choice``: None/"auto" (a call or a plain answer), "any"/"required"/True (some
        call), a tool's name or ``{"type": "function", "function": {"name": ...}}`` (that
        call), "none"/False (no call).
        """
        if not tools:
            if tool_choice not in (None, "auto", "none", False):
                raise ValueError(f"tool_choice={tool_choice!r} but no tools are bound")
            return None
        specs = tuple(tool_spec(t) for t in tools)
        if tool_choice in (None, "auto"):
            return cls(specs, required=False)
        named = tool_choice if isinstance(tool_choice, str) else None
        if tool_choice is False or named in FORBIDDING:
            return None
        if tool_choice is True or named in FORCING:
            return cls(specs, required=True)
        name = _choice_name(tool_choice)
        if name is None:
            raise ValueError(f"unsupported tool_choice {tool_choice!r}")
        chosen = tuple(s for s in specs if _name(s) == name)
        if not chosen:
            names = ", ".join(_name(s) for s in specs)
            raise ValueError(f"tool_choice names {name!r}, which is not a bound tool ({names})")
        return cls(chosen, required=True)

    @property
    def names(self) -> list[str]:
        return [_name(s) for s in self.tools]


# -- the prompt --------------------------------------------------------------------------


def _example_value(schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None and "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return _example_value(options[0]) if options else None
    if kind == "object":
        return {k: _example_value(v) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [_example_value(schema.get("items", {}))]
    examples: dict[str | None, object] = {
        "integer": 1,
        "number": 1.5,
        "boolean": True,
        "null": None,
    }
    return examples.get(kind, "...")


def example_call(spec: Mapping[str, Any]) -> str:
    """A call of ``spec`` with placeholder arguments, showing the reply format."""
    parameters = spec["function"]["parameters"]
    required = set(parameters.get("required", []))
    arguments = {
        k: _example_value(v)
        for k, v in parameters.get("properties", {}).items()
        if k in required or not required
    }
    return call_text(_name(spec), arguments)


def tool_prompt(tools: Sequence[Any], tool_choice: Any = None) -> str:
    """System-prompt text that lists the tools (name, description, JSON-schema parameters) and
    the exact reply format: one JSON object ``{"name": ..., "arguments": {...}}``."""
    setup = ToolSetup.of(tools, tool_choice)
    if setup is None:
        return ""
    return setup_prompt(setup)


def setup_prompt(setup: ToolSetup) -> str:
    lines = ["You can call the following tools:", ""]
    for spec in setup.tools:
        function = spec["function"]
        lines.append(f"- {function['name']}: {function.get('description') or ''}".rstrip(": "))
        params = json.dumps(function["parameters"], separators=(",", ":"))
        lines.append(f"  parameters (JSON schema): {params}")
    lines.append("")
    reply = (
        'reply with a single JSON object {"name": <tool name>, "arguments": '
        "<an object matching its parameters>} and nothing else"
    )
    if setup.required and len(setup.tools) == 1:
        lines.append(f"You must call the tool {setup.names[0]}: {reply}.")
    elif setup.required:
        lines.append(f"You must call one of these tools: {reply}.")
    else:
        lines.append(f"To call a tool, {reply}. If no tool is needed, answer in plain text.")
    lines.append(f"Example: {example_call(setup.tools[0])}")
    return "\n".join(lines)


def with_tool_prompt(conversation: Conversation, prompt: str) -> list[dict[str, str]]:
    """The conversation with ``prompt`` appended to its system turn (or as a new one)."""
    out = [dict(m) for m in conversation]
    if not prompt:
        return out
    if out and out[0]["role"] == "system":
        out[0]["content"] = f"{out[0]['content'].rstrip()}\n\n{prompt}".lstrip()
    else:
        out.insert(0, {"role": "system", "content": prompt})
    return out


def template_supports_tools(chat_template: object) -> bool:
    """Whether a chat template reads a ``tools`` variable (renders tools natively)."""
    return isinstance(chat_template, str) and "tools" in chat_template


# -- parsing and validating --------------------------------------------------------------


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object that starts at some ``{`` of ``text``, in order of their start."""
    found = []
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            found.append(value)
        start = text.find("{", start + 1)
    return found


def _validator(spec: Mapping[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(spec["function"]["parameters"])


def _valid(validator: Draft202012Validator, arguments: object) -> bool:
    if not isinstance(arguments, dict):
        return False
    try:
        return validator.is_valid(arguments)
    except SchemaError:  # a malformed schema validates nothing
        return False


def _call_parts(obj: Mapping[str, Any]) -> tuple[str, object] | None:
    name = obj.get("name")
    if not isinstance(name, str):
        return None
    arguments = obj.get("arguments", obj.get("parameters", obj.get("args")))
    if isinstance(arguments, str):  # OpenAI style: arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if arguments is None and set(obj) == {"name"}:
        arguments = {}
    return name, arguments


def parse_tool_call(text: str, tools: Sequence[Any] | ToolSetup) -> ToolCall | None:
    """The first valid tool call in ``text``, or None.

    Accepts ``{"name", "arguments"}`` (or ``"parameters"``/``"args"``; arguments may be a JSON
    string), anywhere in the text (fences and chatter around it are fine); the name must be an
    offered tool and the arguments must validate against its JSON schema. With a single tool
    offered, a JSON object that is itself valid arguments counts as a call of it (small models
    often answer a structured-output request with the bare object).
    """
    setup = tools if isinstance(tools, ToolSetup) else ToolSetup.of(tools)
    if setup is None:
        return None
    validators = {_name(s): _validator(s) for s in setup.tools}
    for obj in _json_objects(text):
        parts = _call_parts(obj)
        if parts is not None and parts[0] in validators:
            name, arguments = parts
            if isinstance(arguments, dict) and _valid(validators[name], arguments):
                return tool_call(name=name, args=dict(arguments), id=new_call_id())
        if len(validators) == 1:
            ((name, validator),) = validators.items()
            if _valid(validator, obj):
                return tool_call(name=name, args=dict(obj), id=new_call_id())
    return None


def attempts_json(text: str) -> bool:
    """Whether an answer tries to write JSON (so a plain-text answer is not a failed call)."""
    return "{" in text


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class ToolCallValidity(RewardModel):
    """1.0 for an answer holding a valid call of an offered tool, 0.0 for one that tries and
    fails (broken JSON, unknown tool, arguments that do not validate). A plain-text answer
    (no JSON attempt) scores 1.0 when a call is optional and 0.0 when one is required."""

    def __init__(self, tools: Sequence[Any] | ToolSetup, required: bool = False) -> None:
        setup = tools if isinstance(tools, ToolSetup) else ToolSetup.of(tools)
        if setup is None:
            raise ValueError("ToolCallValidity needs at least one tool")
        self.setup = ToolSetup(setup.tools, required=required or setup.required)

    def validity(self, answer: str) -> float:
        if parse_tool_call(answer, self.setup) is not None:
            return 1.0
        if not self.setup.required and not attempts_json(answer):
            return 1.0
        return 0.0

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        return [self.validity(a) for a in answers]

    def __repr__(self) -> str:
        kind = "required" if self.setup.required else "auto"
        return f"ToolCallValidity([{', '.join(self.setup.names)}], {kind})"


__all__ = [
    "ToolCallValidity",
    "ToolSetup",
    "attempts_json",
    "example_call",
    "parse_tool_call",
    "setup_prompt",
    "template_supports_tools",
    "tool_prompt",
    "tool_spec",
    "with_tool_prompt",
]
