"""What a person looking at each tracker sees of a local task: its item, title, column/status and
comments, read from the fakes' state (not through the bridge)."""

from __future__ import annotations

from typing import Any

from wf_sync_bridge.adapters.linear import issue_id

from tests.fakes.asana import FakeAsana
from tests.fakes.github import FakeGithub
from tests.fakes.jira import FakeJira
from tests.fakes.linear import FakeLinear
from tests.sync.conftest import JIRA_STATUS, Fakes

PROJECT = "demo"


def asana_items(f: FakeAsana, key: str) -> list[dict[str, Any]]:
    return [t for t in f.tasks() if f"wf-sync:{PROJECT}/{key}" in t["notes"]]


def jira_items(f: FakeJira, key: str) -> list[dict[str, Any]]:
    return [i for i in f.issues() if f"wf-sync:{PROJECT}:{key}" in i["fields"]["labels"]]


def github_items(f: FakeGithub, key: str) -> list[dict[str, Any]]:
    return [i for i in f.issues() if f"<!-- wf-sync:{PROJECT}/{key} -->" in (i["body"] or "")]


def linear_items(f: FakeLinear, key: str) -> list[dict[str, Any]]:
    wanted = issue_id(f"{PROJECT}/{key}")
    return [i for i in f.issues() if i["id"] == wanted]


def counts(fakes: Fakes, key: str) -> list[int]:
    """How many items each tracker has for the task: [asana, jira, github, linear]."""
    return [
        len(asana_items(fakes.asana, key)),
        len(jira_items(fakes.jira, key)),
        len(github_items(fakes.github, key)),
        len(linear_items(fakes.linear, key)),
    ]


def stages(fakes: Fakes, key: str) -> list[str | None]:
    """The local stage each tracker shows the task in (None: not there yet)."""
    out: list[str | None] = []
    a = asana_items(fakes.asana, key)
    out.append(fakes.asana.section_of(a[0]["gid"]) if a else None)
    j = jira_items(fakes.jira, key)
    back = {v: k for k, v in JIRA_STATUS.items()}
    out.append(back[j[0]["fields"]["status"]["name"]] if j else None)
    g = github_items(fakes.github, key)
    if g:
        labels = [lb["name"] for lb in g[0]["labels"] if lb["name"].startswith("stage:")]
        out.append("done" if g[0]["state"] == "closed" else (labels[0][6:] if labels else None))
    else:
        out.append(None)
    lin = linear_items(fakes.linear, key)
    out.append(lin[0]["state"]["name"] if lin else None)
    return out


def titles(fakes: Fakes, key: str) -> list[str | None]:
    a, j = asana_items(fakes.asana, key), jira_items(fakes.jira, key)
    g, lin = github_items(fakes.github, key), linear_items(fakes.linear, key)
    return [
        a[0]["name"] if a else None,
        j[0]["fields"]["summary"] if j else None,
        g[0]["title"] if g else None,
        lin[0]["title"] if lin else None,
    ]


def comment_texts(fakes: Fakes, key: str) -> list[list[str]]:
    a, j = asana_items(fakes.asana, key), jira_items(fakes.jira, key)
    g, lin = github_items(fakes.github, key), linear_items(fakes.linear, key)
    return [
        [c["text"] for c in fakes.asana.comments(a[0]["gid"])] if a else [],
        [str(c["body"]) for c in fakes.jira.comments.get(j[0]["id"], [])] if j else [],
        [c["body"] for c in fakes.github.comments.get(g[0]["number"], [])] if g else [],
        [c["body"] for c in fakes.linear.comments.get(lin[0]["id"], [])] if lin else [],
    ]
