"""Contract tests: the official SDKs (PyGithub, asana, jira) run their basic calls against our fakes,
so a fake cannot drift from the real API unnoticed: envelopes, paging, ids and errors must be what the
vendor's own client expects."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import asana
import pytest
from asana.rest import ApiException
from github import Auth, Github
from jira import JIRA, JIRAError

from tests.fakes.asana import FakeAsana
from tests.fakes.github import FakeGithub
from tests.fakes.jira import FakeJira


@pytest.fixture
def fake() -> Iterator[FakeGithub]:
    f = FakeGithub()
    f.start()
    try:
        yield f
    finally:
        f.stop()


def test_pygithub_creates_lists_comments_and_closes_issues(fake: FakeGithub) -> None:
    gh = Github(base_url=fake.url, auth=Auth.Token(fake.token), retry=None)
    try:
        _pygithub_basic_calls(gh)
    finally:
        gh.close()  # its requests session: no socket left for the garbage collector


def _pygithub_basic_calls(gh: Github) -> None:
    repo = gh.get_repo("acme/app")
    assert repo.full_name == "acme/app"
    issue = repo.create_issue(title="From the SDK", body="hello", labels=["stage:dev"])
    assert (issue.title, [lb.name for lb in issue.labels]) == ("From the SDK", ["stage:dev"])
    listed = list(repo.get_issues(state="all"))
    # The list includes the fake's pull requests, as GitHub's does; the SDK marks them.
    assert sorted(i.number for i in listed if i.pull_request is None) == [issue.number]
    assert len([i for i in listed if i.pull_request is not None]) == 2
    comment = issue.create_comment("a comment")
    assert [c.body for c in issue.get_comments()] == ["a comment"]
    assert comment.user.login == "wf-bot"
    issue.edit(state="closed")
    assert repo.get_issue(issue.number).state == "closed"
    assert gh.get_user().login == "wf-bot"


@pytest.fixture
def fake_asana() -> Iterator[FakeAsana]:
    f = FakeAsana(sections=["backlog", "dev", "done"], page_size=2)
    f.start()
    try:
        yield f
    finally:
        f.stop()


@contextlib.contextmanager
def asana_client(url: str, token: str) -> Iterator[Any]:
    """The SDK's client, its thread pool and connections closed at the end (not left to the GC)."""
    cfg = asana.Configuration()
    cfg.access_token = token
    cfg.host = url
    client = asana.ApiClient(cfg)
    try:
        yield client
    finally:
        client.pool.close()
        client.pool.join()
        client.rest_client.pool_manager.clear()


def test_the_asana_sdk_creates_pages_moves_comments_and_deletes_tasks(fake_asana: FakeAsana) -> None:
    with asana_client(fake_asana.url, fake_asana.token) as client:
        _asana_basic_calls(fake_asana, client)
    with asana_client(fake_asana.url, "wrong") as client, pytest.raises(ApiException) as denied:
        asana.UsersApi(client).get_user("me", {})
    assert denied.value.status == 401


def _asana_basic_calls(fake_asana: FakeAsana, client: Any) -> None:
    assert asana.UsersApi(client).get_user("me", {})["name"] == "Workflow Hub bot"
    sections = {
        s["name"]: s["gid"]
        for s in asana.SectionsApi(client).get_sections_for_project(fake_asana.project_gid, {})
    }
    assert list(sections) == ["backlog", "dev", "done"]

    tasks = asana.TasksApi(client)
    made = tasks.create_task(
        {
            "data": {
                "name": "From the SDK",
                "projects": [fake_asana.project_gid],
                "html_notes": "<body><strong>hi</strong></body>",
            }
        },
        {},
    )
    assert (made["name"], made["notes"]) == ("From the SDK", "hi")
    for n in range(3):
        tasks.create_task({"data": {"name": f"More {n}", "projects": [fake_asana.project_gid]}}, {})
    # Pages of two: the SDK follows next_page to the end.
    listed = [t["name"] for t in tasks.get_tasks_for_project(fake_asana.project_gid, {})]
    assert listed == ["From the SDK", "More 0", "More 1", "More 2"]

    asana.SectionsApi(client).add_task_for_section(sections["dev"], {"body": {"data": {"task": made["gid"]}}})
    assert fake_asana.section_of(made["gid"]) == "dev"
    stories = asana.StoriesApi(client)
    stories.create_story_for_task({"data": {"text": "a comment"}}, made["gid"], {})
    assert [s["text"] for s in stories.get_stories_for_task(made["gid"], {}) if s["type"] == "comment"] == [
        "a comment"
    ]
    assert tasks.update_task({"data": {"name": "Renamed"}}, made["gid"], {})["name"] == "Renamed"

    tasks.delete_task(made["gid"])
    with pytest.raises(ApiException) as gone:
        tasks.get_task(made["gid"], {})
    assert gone.value.status == 404


@pytest.fixture
def fake_jira() -> Iterator[FakeJira]:
    f = FakeJira(statuses=["Backlog", "Dev", "QA", "Done"], page_size=2)
    f.start()
    try:
        yield f
    finally:
        f.stop()


ADF = {
    "type": "doc",
    "version": 1,
    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hi"}]}],
}


def test_the_jira_sdk_creates_searches_transitions_comments_and_deletes_issues(fake_jira: FakeJira) -> None:
    jira = JIRA(
        server=fake_jira.url,
        basic_auth=(fake_jira.email, fake_jira.token),
        options={"rest_api_version": "3"},
        max_retries=0,
    )
    try:
        assert jira.server_info()["deploymentType"] == "Cloud"
        assert jira.myself()["displayName"] == "Workflow Hub bot"
        fields = {"project": {"key": fake_jira.project_key}, "issuetype": {"name": "Task"}}
        issue = jira.create_issue(
            fields={**fields, "summary": "From the SDK", "description": ADF, "labels": ["wf"]}
        )
        assert (issue.key, issue.fields.summary, issue.fields.status.name) == (
            "WF-1",
            "From the SDK",
            "Backlog",
        )
        for n in range(3):
            jira.create_issue(fields={**fields, "summary": f"More {n}"})
        # search/jql pages of two, followed by the SDK through nextPageToken.
        found = jira.enhanced_search_issues(f"project = {fake_jira.project_key}", maxResults=0)
        assert [i.key for i in found] == ["WF-1", "WF-2", "WF-3", "WF-4"]

        # The workflow goes one neighbour at a time: from Backlog only to Dev.
        [step] = jira.transitions(issue)
        assert step["to"]["name"] == "Dev"
        jira.transition_issue(issue, step["id"])
        assert jira.issue(issue.key).fields.status.name == "Dev"
        comment = jira.add_comment(issue, ADF)
        assert [c.id for c in jira.comments(issue)] == [comment.id]
        issue.update(fields={"summary": "Renamed"})
        assert jira.issue(issue.id).fields.summary == "Renamed"
        jira.add_issue_property(issue.id, "wf.sync", {"project": "demo"})
        assert jira.issue_property(issue.id, "wf.sync").value.project == "demo"

        issue.delete()  # type: ignore[no-untyped-call]
        with pytest.raises(JIRAError) as gone:
            jira.issue(issue.id)
        assert gone.value.status_code == 404
    finally:
        jira.close()  # type: ignore[no-untyped-call]
