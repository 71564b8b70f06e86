"""The tools agents call through the model's native tool calling, and their JSON-schema definitions.

A tool never raises into the agent loop: bad arguments, paths outside the workspace and I/O errors all
come back as a `ToolOutcome` with `ok=False` and a message the model can act on. `run` executes a
shell command inside the job's sandbox (never on the host); file tools run off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from wf_agent_runner.sandbox.base import LineCallback, Sandbox
from wf_agent_runner.workspace import ToolError, Workspace

log = logging.getLogger(__name__)

FinishStatus = Literal["pass", "fail"]


@dataclass(frozen=True)
class Finish:
    status: FinishStatus
    summary: str


@dataclass(frozen=True)
class ToolOutcome:
    text: str
    ok: bool = True
    finish: Finish | None = None


def _fn(
    name: str,
    description: str,
    params: dict[str, str],
    enums: dict[str, list[str]] | None = None,
    optional: dict[str, tuple[str, str]] | None = None,  # name -> (json type, description)
) -> Any:
    props: dict[str, Any] = {p: {"type": "string", "description": d} for p, d in params.items()}
    for p, values in (enums or {}).items():
        props[p]["enum"] = values
    for p, (kind, d) in (optional or {}).items():
        props[p] = {"type": kind, "description": d}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": props, "required": list(params)},
        },
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "list_files": _fn(
        "list_files",
        "List the files under a directory of the workspace (recursive). Use '.' for the whole workspace.",
        {"path": "directory relative to the workspace root, e.g. '.' or 'src'"},
    ),
    "read_file": _fn(
        "read_file",
        "Read a text file of the workspace, whole or a range of lines (numbered from 1).",
        {"path": "file path relative to the workspace root, e.g. 'src/app.py'"},
        optional={
            "start_line": ("integer", "first line to show (optional)"),
            "end_line": ("integer", "last line to show (optional)"),
        },
    ),
    "search": _fn(
        "search",
        "Search the workspace's files for a regular expression; answers 'path:line:text' per match.",
        {"pattern": "a regular expression, e.g. 'def parse_'"},
        optional={"path": ("string", "directory or file to search, relative to the workspace (default '.')")},
    ),
    "run": _fn(
        "run",
        "Run a shell command (/bin/sh -c) in the sandbox, in the workspace directory /workspace, e.g. "
        "'python -m pytest -q'. No network. Answers the exit code, stdout and stderr (long output is cut).",
        {"command": "the shell command"},
        optional={"timeout_seconds": ("integer", "time limit in seconds (default 120)")},
    ),
    "write_file": _fn(
        "write_file",
        "Create or overwrite a file of the workspace with the given content (creates parent directories).",
        {"path": "file path relative to the workspace root", "content": "the complete new file content"},
    ),
    "edit_file": _fn(
        "edit_file",
        "Replace one exact piece of text in a file. `old` must occur exactly once in the file.",
        {
            "path": "file path relative to the workspace root",
            "old": "the exact text to replace (copy it from read_file, with its whitespace)",
            "new": "the replacement text",
        },
    ),
    "finish": _fn(
        "finish",
        "Call once when you are done. status 'pass' if the task is complete, 'fail' if it cannot be done "
        "or you need a human to clarify something. The summary's first line is a short imperative "
        "sentence (it becomes the commit subject), then what you did and why.",
        {"status": "'pass' or 'fail'", "summary": "what you did, or what blocks you"},
        {"status": ["pass", "fail"]},
    ),
}

FILE_TOOLS = ("list_files", "read_file", "search", "write_file", "edit_file", "finish")
READ_ONLY_TOOLS = ("list_files", "read_file", "search", "finish")
RUN_TOOLS = (*FILE_TOOLS[:-1], "run", "finish")


@dataclass(frozen=True)
class RunLimits:
    default_timeout: float = 120.0
    max_timeout: float = 600.0


class ToolBox:
    """The tools one agent may use, bound to its workspace (and, for `run`, its sandbox)."""

    def __init__(
        self,
        workspace: Workspace,
        names: Iterable[str],
        *,
        sandbox: Sandbox | None = None,
        limits: RunLimits | None = None,
        on_line: LineCallback | None = None,
    ) -> None:
        self.workspace = workspace
        self.names = tuple(names)
        self.sandbox = sandbox
        self.limits = limits or RunLimits()
        self.on_line = on_line
        unknown = [n for n in self.names if n not in SCHEMAS]
        if unknown:
            raise ValueError(f"unknown tools {unknown}; known: {sorted(SCHEMAS)}")
        if "run" in self.names and sandbox is None:
            raise ValueError("the run tool needs a sandbox")

    @property
    def schemas(self) -> list[dict[str, Any]]:
        return [SCHEMAS[n] for n in self.names]

    def call(self, name: str, args: dict[str, Any]) -> ToolOutcome:
        if name not in self.names:
            return ToolOutcome(
                f"error: there is no tool {name!r}; available tools: {', '.join(self.names)}", ok=False
            )
        try:
            return self._dispatch(name, args)
        except ToolError as err:
            return ToolOutcome(f"error: {err}", ok=False)
        except OSError as err:  # e.g. a parent path is a file, permissions: the model can try elsewhere
            return ToolOutcome(f"error: {name} failed: {err.strerror or err}", ok=False)
        except Exception as err:  # noqa: BLE001 - arguments are untrusted model output: never crash
            log.warning("tool %s failed on unexpected input: %r", name, err)
            return ToolOutcome(f"error: {name} failed: {type(err).__name__}: {err}", ok=False)

    async def acall(self, name: str, args: dict[str, Any]) -> ToolOutcome:
        """`call` for the agent loop: `run` in the sandbox, file tools in a thread."""
        if name == "run" and name in self.names:
            try:
                return await self._run(args)
            except ToolError as err:
                return ToolOutcome(f"error: {err}", ok=False)
        return await asyncio.to_thread(self.call, name, args)

    async def _run(self, args: dict[str, Any]) -> ToolOutcome:
        if self.sandbox is None:
            raise ToolError("run is not available here")
        command = _arg(args, "command")
        timeout = _number(args, "timeout_seconds", self.limits.default_timeout)
        if timeout <= 0:
            raise ToolError("timeout_seconds must be a positive number of seconds")
        capped = min(timeout, self.limits.max_timeout)
        outcome = await self.sandbox.run(command, capped, self.on_line)
        text = outcome.report()
        if capped < timeout:
            text += f"\n[timeout_seconds was capped at {capped:g}s by the configuration]"
        return ToolOutcome(text, ok=outcome.ok)

    def _dispatch(self, name: str, args: dict[str, Any]) -> ToolOutcome:
        ws = self.workspace
        if name == "list_files":
            return ToolOutcome(ws.list_files(_arg(args, "path", default=".")))
        if name == "read_file":
            return ToolOutcome(
                ws.read_file(_arg(args, "path"), _line(args, "start_line"), _line(args, "end_line"))
            )
        if name == "search":
            return ToolOutcome(ws.search(_arg(args, "pattern"), _arg(args, "path", default=".")))
        if name == "run":
            raise ToolError("run is asynchronous; the agent loop calls it through acall")
        if name == "write_file":
            return ToolOutcome(ws.write_file(_arg(args, "path"), _arg(args, "content", allow_empty=True)))
        if name == "edit_file":
            return ToolOutcome(
                ws.edit_file(
                    _arg(args, "path"),
                    _arg(args, "old", allow_empty=True),
                    _arg(args, "new", allow_empty=True),
                )
            )
        return _finish(args)


def _finish(args: dict[str, Any]) -> ToolOutcome:
    status = str(args.get("status", "")).strip().lower()
    if status not in ("pass", "fail"):
        raise ToolError(f"finish: status must be 'pass' or 'fail', got {args.get('status')!r}")
    summary = _arg(args, "summary", allow_empty=True).strip()
    if not summary:
        raise ToolError("finish: give a summary of what you did (or what blocks you)")
    finish = Finish("pass" if status == "pass" else "fail", summary)
    return ToolOutcome(f"finished with status {status}", finish=finish)


def _arg(args: dict[str, Any], key: str, *, default: str | None = None, allow_empty: bool = False) -> str:
    value = args.get(key, default)
    if value is None:
        raise ToolError(f"missing argument {key!r}")
    if not isinstance(value, str):
        raise ToolError(f"argument {key!r} must be a string, got {type(value).__name__}")
    if not value and not allow_empty and default is None:
        raise ToolError(f"argument {key!r} must not be empty")
    return value


def _number(args: dict[str, Any], key: str, default: float) -> float:
    value = args.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ToolError(f"argument {key!r} must be a number, got a boolean")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ToolError(f"argument {key!r} must be a number, got {value!r}") from None


def _line(args: dict[str, Any], key: str) -> int | None:
    value = args.get(key)
    if value is None or value == "":
        return None
    number = _number(args, key, 0)
    if number < 1 or number != int(number):
        raise ToolError(f"argument {key!r} must be a line number (1 or more), got {value!r}")
    return int(number)
