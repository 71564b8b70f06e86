"""Tool calls that survive weak models.

- `parse_tool_calls(text, tools)`: the calls a reply prints as text: ```json fences, Qwen-style
  `<tool_call>` tags or bare JSON, several per reply, in the shapes models use
  ({"name", "arguments"|"parameters"|"args"|"input"}, {"tool": ...}, {"function": {...}},
  {"tool_calls": [...]}, {"<tool name>": {...}}), after dropping `<think>` blocks. Each call is
  checked against its tool's JSON schema; a list where a string is expected (or the other way
  round) and numbers as strings are coerced, anything still wrong is reported as an error text.
- `ToolCallAdapter`: wraps one backend's adapter. With native tool support it sends the tools and,
  when a reply has no tool call but prints one, executes that (repair). Without native support
  (the start-up capability check, or `tool_calls: emulated`), the tools are described in the system
  prompt, the history is rendered as text, the reply is constrained to one call's JSON schema
  (`call_schema`: structured output, a grammar on llama.cpp and Ollama), and the calls are parsed
  from the reply; a reply whose calls do not validate is sent back with the errors, up to
  `repairs` times.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from wf_agent_runner.llm.base import (
    Capabilities,
    ChatResult,
    LLMAdapter,
    Message,
    TokenCallback,
    ToolCall,
    Usage,
)
from wf_agent_runner.llm.errors import LLMError

log = logging.getLogger(__name__)

THINK = re.compile(r"<think(?:ing)?>.*?(?:</think(?:ing)?>|\Z)", re.DOTALL | re.IGNORECASE)
FENCE = re.compile(r"```[a-zA-Z_]*[ \t]*\n?(.*?)```", re.DOTALL)
TAGGED = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL | re.IGNORECASE)
_ARG_KEYS = ("arguments", "parameters", "args", "input", "params")
_NAME_KEYS = ("name", "tool", "tool_name", "function", "action")


def strip_think(text: str) -> str:
    """The reply without <think>…</think> reasoning (an unclosed one runs to the end)."""
    return THINK.sub("", text).strip()


def _json_values(text: str) -> list[Any]:
    """Every top-level JSON object or array found in `text`, in order."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    i = 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            found.append(value)
            i = end
        else:
            i += 1
    return found


def json_candidates(text: str) -> list[Any]:
    """JSON values of a reply: tagged and fenced blocks first; bare JSON only when there are none."""
    text = strip_think(text)
    blocks = [m.group(1) for m in TAGGED.finditer(text)] + [m.group(1) for m in FENCE.finditer(text)]
    values = [v for b in blocks for v in _json_values(b)]
    return values or _json_values(text)


@dataclass(frozen=True)
class ParsedCalls:
    calls: list[ToolCall]
    errors: list[str]  # what to tell the model about calls that could not be used
    looked_like_calls: bool  # some JSON in the reply had the shape of a tool call


def _schemas(tools: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for t in tools:
        fn = t.get("function", t)
        out[str(fn.get("name"))] = fn.get("parameters") or {"type": "object", "properties": {}}
    return out


def _shape(obj: Any, known: set[str]) -> list[tuple[str, Any]]:
    """(name, raw arguments) pairs that `obj` describes, or [] if it is not a tool call."""
    if isinstance(obj, list):
        return [pair for item in obj for pair in _shape(item, known)]
    if not isinstance(obj, dict):
        return []
    for key in ("tool_calls", "calls", "function_calls"):
        if isinstance(obj.get(key), list):
            return _shape(obj[key], known)
    if isinstance(obj.get("function"), dict):  # OpenAI's {"type": "function", "function": {...}}
        return _shape(obj["function"], known)
    if isinstance(obj.get("function_call"), dict):
        return _shape(obj["function_call"], known)
    name = next((obj[k] for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
    if name is not None:
        args = next((obj[k] for k in _ARG_KEYS if k in obj), None)
        if args is None:  # {"name": "finish", "status": "pass", ...}: the rest are the arguments
            args = {k: v for k, v in obj.items() if k not in _NAME_KEYS and k != "type"}
        return [(name, args)]
    if len(obj) == 1:
        ((only, args),) = obj.items()
        if only in known and isinstance(args, dict):
            return [(only, args)]
    return []


def _coerce(value: Any, prop: dict[str, Any]) -> Any:
    want = prop.get("type")
    if want == "string":
        if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
            return "\n".join(str(v) for v in value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False)
    elif want == "array":
        if isinstance(value, str):
            return [value]
    elif want == "integer":
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value.strip())
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif want == "number" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    elif want == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


_TYPES: dict[str, Any] = {
    "string": str,
    "array": list,
    "object": dict,
    "integer": int,
    "number": int | float,
    "boolean": bool,
}


def validate_arguments(name: str, raw: Any, schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Arguments coerced to `schema` and the problems left (empty when the call is usable)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return {}, [f"{name}: arguments are not a JSON object: {raw[:200]!r}"]
    if not isinstance(raw, dict):
        return {}, [f"{name}: arguments must be a JSON object, got {type(raw).__name__}"]
    props: dict[str, Any] = schema.get("properties") or {}
    args = {k: _coerce(v, props.get(k) or {}) for k, v in raw.items()}
    errors = []
    for req in schema.get("required") or []:
        if req not in args:
            errors.append(f"{name}: missing required argument {req!r}")
    for key, value in args.items():
        prop = props.get(key)
        if prop is None:
            if props and schema.get("additionalProperties") is False:
                errors.append(f"{name}: unknown argument {key!r}; allowed: {sorted(props)}")
            continue
        want = _TYPES.get(str(prop.get("type")))
        if want is not None and (not isinstance(value, want) or (want is int and isinstance(value, bool))):
            errors.append(
                f"{name}: argument {key!r} must be a {prop.get('type')}, got {type(value).__name__}"
            )
        elif "enum" in prop and value not in prop["enum"]:
            errors.append(f"{name}: argument {key!r} must be one of {prop['enum']}, got {value!r}")
    return args, errors


def parse_tool_calls(text: str, tools: list[dict[str, Any]]) -> ParsedCalls:
    """The tool calls printed in `text`, validated against `tools` (function schemas)."""
    schemas = _schemas(tools)
    known = set(schemas)
    calls: list[ToolCall] = []
    errors: list[str] = []
    shaped = False
    for value in json_candidates(text):
        for name, raw in _shape(value, known):
            shaped = True
            if name not in schemas:
                errors.append(f"there is no tool {name!r}; the tools are: {', '.join(sorted(known))}")
                continue
            args, problems = validate_arguments(name, raw, schemas[name])
            if problems:
                errors.extend(problems)
            else:
                calls.append(ToolCall(name=name, arguments=args))
    return ParsedCalls(calls, errors, shaped)


def describe_tools(tools: list[dict[str, Any]]) -> str:
    """The system-prompt section that replaces native tool calling."""
    lines = []
    for t in tools:
        fn = t.get("function", t)
        params = fn.get("parameters") or {}
        props = params.get("properties") or {}
        sig = ", ".join(f"{p}: {(s or {}).get('type', 'any')}" for p, s in props.items())
        lines.append(f"- {fn.get('name')}({sig}): {fn.get('description', '')}")
        for p, s in props.items():
            if (s or {}).get("description"):
                lines.append(f"    {p}: {s['description']}")
    example = '{"name": "<tool name>", "arguments": {"<argument>": "<value>"}}'
    return (
        "## Tools\nYou act only by calling tools. To call a tool, write a JSON object in a ```json "
        f"fenced block:\n```json\n{example}\n```\nYou may call several tools in one reply, one JSON "
        "object (or fenced block) per call. The result of each call comes back in the next message. "
        "The tools:\n" + "\n".join(lines)
    )


def call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON schema of one call to one of `tools`: {"name": <tool>, "arguments": {...}}.

    Sent as the structured-output format of an emulated turn, it makes grammar-constrained servers
    (llama.cpp, Ollama) produce a well-formed call even from a very small model. The root is an
    object (Anthropic's forced tool input must be one) whose `anyOf` ties each name to its arguments.
    """
    variants = []
    for t in tools:
        fn = t.get("function", t)
        params = dict(fn.get("parameters") or {"type": "object", "properties": {}})
        params.setdefault("type", "object")
        params["additionalProperties"] = False
        variants.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn.get("name")}, "arguments": params},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    return {"type": "object", "anyOf": variants}


def emulated_history(messages: list[Message], tools: list[dict[str, Any]]) -> list[Message]:
    """The history for a model without tool calling: tool descriptions in the system message,
    earlier calls as JSON text, results as user messages."""
    section = describe_tools(tools)
    out: list[Message] = []
    if not messages or messages[0].get("role") != "system":
        out.append({"role": "system", "content": section})
    for i, m in enumerate(messages):
        role = m.get("role")
        if role == "system" and i == 0:
            out.append({"role": "system", "content": f"{m.get('content') or ''}\n\n{section}"})
        elif role == "assistant" and m.get("tool_calls"):
            calls = [
                json.dumps({"name": tc["function"]["name"], "arguments": tc["function"].get("arguments", {})})
                for tc in m["tool_calls"]
            ]
            text = (
                str(m.get("content") or "") + "\n" + "\n".join(f"```json\n{c}\n```" for c in calls)
            ).strip()
            out.append({"role": "assistant", "content": text})
        elif role == "tool":
            out.append(
                {
                    "role": "user",
                    "content": f"Result of {m.get('tool_name') or 'the tool'}:\n{m.get('content') or ''}",
                }
            )
        else:
            out.append({"role": str(role), "content": str(m.get("content") or "")})
    return out


def _feedback(errors: list[str]) -> Message:
    listed = "\n".join(f"- {e}" for e in errors[:10])
    return {
        "role": "user",
        "content": (
            f"Your tool call could not be used:\n{listed}\nReply again with the corrected call as JSON "
            'in a ```json block: {"name": "<tool name>", "arguments": {...}}.'
        ),
    }


def _add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        duration_ms=a.duration_ms + b.duration_ms,
    )


# Capability checks are cached per process: (adapter class, url, model) -> native tool support.
_NATIVE: dict[tuple[str, str, str], bool] = {}


def _key(adapter: LLMAdapter) -> tuple[str, str, str]:
    url = str(getattr(adapter, "base_url", None) or getattr(adapter, "host", ""))
    return type(adapter).__name__, url, adapter.model


def remember_capabilities(adapter: LLMAdapter, caps: Capabilities) -> None:
    if caps.reachable:
        _NATIVE[_key(adapter)] = caps.native_tools


class ToolCallAdapter(LLMAdapter):
    def __init__(self, inner: LLMAdapter, *, repairs: int = 2) -> None:
        self.inner = inner
        self.model = inner.model
        self.tool_calls = inner.tool_calls
        self.repairs = repairs

    def __repr__(self) -> str:
        return repr(self.inner)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def capabilities(self) -> Capabilities:
        caps = await self.inner.capabilities()
        remember_capabilities(self.inner, caps)
        return caps

    async def native(self) -> bool:
        if self.tool_calls in ("native", "emulated"):
            return self.tool_calls == "native"
        key = _key(self.inner)
        if key not in _NATIVE:
            await self.capabilities()
        return _NATIVE.get(key, True)

    async def chat(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        format: dict[str, Any] | str | None = None,
        on_token: TokenCallback | None = None,
        accepted: Collection[str] | None = None,
    ) -> ChatResult:
        if not tools:
            return await self.inner.chat(messages, format=format, on_token=on_token)
        spent = Usage()
        if await self.native():
            try:
                reply = await self.inner.chat(messages, tools=tools, format=format, on_token=on_token)
            except LLMError as err:
                if "does not support tools" not in err.message:
                    raise
                log.warning("%r: %s; switching to emulated tool calls", self.inner, err.message)
                _NATIVE[_key(self.inner)] = False
            else:
                if reply.tool_calls:
                    return reply
                parsed = parse_tool_calls(reply.content, tools)
                if parsed.calls:
                    log.info(
                        "%r printed %d tool call(s) as text; executing them", self.inner, len(parsed.calls)
                    )
                    return replace(reply, tool_calls=parsed.calls)
                if not parsed.errors or self.tool_calls == "native":
                    return reply
                # It tried to call a tool and could not (a tool that does not exist, arguments that do
                # not fit): this model does not handle native tools. Emulated, constrained calls from
                # now on, starting with this turn again.
                log.warning(
                    "%r printed tool calls that do not fit the tools (%s); switching to emulated tool calls",
                    self.inner,
                    "; ".join(parsed.errors[:3]),
                )
                _NATIVE[_key(self.inner)] = False
                spent = reply.usage
        return await self._emulated(messages, tools, format, on_token, spent, accepted)

    async def _emulated(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        format: dict[str, Any] | str | None,
        on_token: TokenCallback | None,
        usage: Usage,
        accepted: Collection[str] | None = None,
    ) -> ChatResult:
        history = emulated_history(messages, tools)
        # The reply is constrained to one well-formed call to a tool this turn accepts (the system
        # prompt describes all of them, every turn) unless the caller asked for its own format.
        allowed = [t for t in tools if accepted is None or t.get("function", t).get("name") in accepted]
        shape = format if format is not None else call_schema(allowed or tools)
        reply: ChatResult | None = None
        for _ in range(1 + max(0, self.repairs)):
            reply = await self.inner.chat(history, format=shape, on_token=on_token)
            usage = _add_usage(usage, reply.usage)
            parsed = parse_tool_calls(reply.content, tools)
            if parsed.calls or not parsed.errors:
                return replace(reply, tool_calls=parsed.calls, usage=usage)
            history = [*history, {"role": "assistant", "content": reply.content}, _feedback(parsed.errors)]
        if reply is None:
            raise LLMError("no reply")  # unreachable: the loop runs at least once
        return replace(reply, usage=usage)
