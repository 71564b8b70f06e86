"""Contract test: the official PyGithub SDK runs its basic calls against the GitHub fake, so the fake
cannot drift from the real API unnoticed (asana and jira SDK contract tests are not written yet)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from github import Auth, Github

from tests.fakes.github import FakeGithub


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
