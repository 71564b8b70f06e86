"""What the client commands share: argument types, task-key → project lookup, JSON output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from wf_common import text as rules
from wf_common.keys import BUG_KEY, SLUG, TASK_KEY
from wf_common.workspaces import workspace_problem

from wf_cli.client import HubClient
from wf_cli.errors import CliError, UsageError
from wf_cli.text import clean

if TYPE_CHECKING:
    from wf_common.config import WorkflowConfig

Handler = Callable[[argparse.Namespace, HubClient], int]


def text(max_length: int) -> Callable[[str], str]:
    """An argparse type: free text under wf_common.text's rules (no NUL, no lone surrogates)."""

    def check(raw: str) -> str:
        wrong = rules.problem(raw, max_length=max_length)
        if wrong:
            raise argparse.ArgumentTypeError(f"the text {wrong}")
        return raw

    return check


def line(max_length: int) -> Callable[[str], str]:
    """An argparse type: one line of text (a name, a title, a command)."""

    def check(raw: str) -> str:
        wrong = rules.problem(raw, line=True, max_length=max_length)
        if wrong:
            raise argparse.ArgumentTypeError(f"the value {wrong}")
        return raw

    return check


def workspace(raw: str) -> str:
    """A workspace as the API takes it: absolute, resolved against the current directory here."""
    path = os.path.abspath(os.path.expanduser(raw))
    wrong = workspace_problem(path)
    if wrong:
        raise argparse.ArgumentTypeError(wrong)
    return path


def task_key(raw: str) -> str:
    key = raw.strip().upper()
    if not TASK_KEY.match(key):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a task key; task keys look like T-001")
    return key


def bug_key(raw: str) -> str:
    key = raw.strip().upper()
    if not BUG_KEY.match(key):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a bug key; bug keys look like B-001")
    return key


def slug(raw: str) -> str:
    if not SLUG.match(raw):
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a project slug: lowercase letters, digits and -, e.g. listsnap"
        )
    return raw


def add_project_flag(p: argparse.ArgumentParser, *, required: bool = False, what: str = "") -> None:
    p.add_argument(
        "--project", "-p", type=slug, required=required, metavar="SLUG",
        help=what or "the task's project (found from the key when it is unique)",
    )  # fmt: skip


def task_path(project: str, key: str, action: str = "") -> str:
    path = f"/api/projects/{quote(project, safe='')}/tasks/{quote(key, safe='')}"
    return f"{path}/{action}" if action else path


def project_path(project: str, rest: str) -> str:
    return f"/api/projects/{quote(project, safe='')}/{rest}"


def as_list(data: Any, what: str) -> list[dict[str, Any]]:
    """The list an endpoint answered (bare, or wrapped as {"items"/what: [...]})."""
    if isinstance(data, dict):
        for k in (what, "items", "data"):
            if isinstance(data.get(k), list):
                data = data[k]
                break
    if not isinstance(data, list):
        raise CliError(f"unexpected answer listing {what}: expected a list")
    return [d for d in data if isinstance(d, dict)]


def resolve_project(client: HubClient, key: str, project: str | None) -> str:
    """The project of task `key`: `project` if given, else the only project that has such a task."""
    if project:
        return project
    tasks = as_list(client.get("/api/tasks", {"key": key}), "tasks")
    projects = sorted({str(t.get("project")) for t in tasks if str(t.get("key", "")).upper() == key})
    if not projects:
        raise CliError(f"no task {key} in any project (wf status lists the tasks)")
    if len(projects) > 1:
        raise UsageError(
            f"task {key} exists in several projects ({', '.join(clean(p) for p in projects)}); "
            "say which with --project SLUG"
        )
    return projects[0]


def resolve_bug_project(client: HubClient, key: str, project: str | None) -> str:
    if project:
        return project
    bugs = as_list(client.get("/api/bugs", {"include_killed": True}), "bugs")
    projects = sorted({str(b.get("project")) for b in bugs if b.get("key") == key})
    if not projects:
        raise CliError(f"no bug {key} in any project (wf bugs --all lists them)")
    if len(projects) > 1:
        raise UsageError(
            f"bug {key} exists in several projects ({', '.join(clean(p) for p in projects)}); "
            "say which with --project SLUG"
        )
    return projects[0]


def check_project_exists(client: HubClient, project: str) -> None:
    """List endpoints answer an empty list for a project that does not exist; say so instead."""
    known = [str(p.get("slug")) for p in as_list(client.get("/api/projects"), "projects")]
    if project not in known:
        hint = (
            f"known projects: {', '.join(clean(k) for k in known)}" if known else "there are no projects yet"
        )
        raise CliError(f"no project {project!r} ({hint}; wf project create SLUG --workspace DIR adds one)")


def print_json(data: Any) -> None:
    # ensure_ascii escapes every control character, so untrusted text cannot reach the terminal raw.
    print(json.dumps(data, indent=2, default=str))


def local_config() -> WorkflowConfig:
    """The pipeline as this machine's config describes it, for ordering stages; defaults if unusable."""
    from wf_common.config import load_config
    from wf_common.errors import ConfigError

    path = os.environ.get("WF_CONFIG") or ("config.yaml" if Path("config.yaml").is_file() else None)
    try:
        return load_config(path)
    except ConfigError:
        return load_config(None)


def stage_order(seen: Iterable[str], config: WorkflowConfig | None = None) -> list[str]:
    """Pipeline order: backlog, the configured stages, done, then any other stage met, as met."""
    from wf_common.config import ENTRY_STAGE, FINAL_STAGE

    cfg = config or local_config()
    order = [ENTRY_STAGE, *(s.name for s in cfg.pipeline.stages), FINAL_STAGE]
    extra = [s for s in dict.fromkeys(seen) if s not in order]
    return order + extra


def eprint(message: str) -> None:
    print(message, file=sys.stderr)
