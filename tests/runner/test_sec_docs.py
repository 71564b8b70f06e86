"""SEC (deterministic secret scan + read-only review) and DOCS (documents and commits)."""

from __future__ import annotations

from pathlib import Path

import pytest
from wf_agent_runner.secrets_scan import scan_text
from wf_common.states import Verdict

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.runner.conftest import AgentRunner, JobFactory
from tests.runner.helpers import git, last_message, log_subjects

AWS_KEY = "AKIA" + "Z7QXW2K4M9P3L8R5"  # split so this file itself does not look like a leak


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        (f'aws_access_key_id = "{AWS_KEY}"', "aws-access-key-id"),
        ("-----BEGIN RSA " + "PRIVATE KEY-----", "private-key"),
        ('password = "hR7#kq2!Lp9zWx"', "hardcoded-secret"),
        ("API_KEY: 'f3a9c1e7b2d84a6f9e0c'", "hardcoded-secret"),
        ('"auth_token": "eyJhbGciOiJIUzI1NiJ9abc"', "hardcoded-secret"),
    ],
)
def test_scanner_finds_secrets_without_repeating_them(line: str, rule: str) -> None:
    [finding] = scan_text("app/settings.py", f"x = 1\n{line}\n")
    assert finding.rule == rule
    assert finding.line == 2
    assert finding.path == "app/settings.py"
    assert "Z7QXW2K4M9P3L8R5" not in finding.message
    assert "hR7#kq2!Lp9zWx" not in finding.message


@pytest.mark.parametrize(
    "line",
    [
        'password = os.environ["DB_PASSWORD"]',
        'password = "changeme123"',
        'api_key = "${API_KEY}"',
        'token = "xxxxxxxxxxxx"',
        'password = "aaaaaaaaaaaa"',  # low entropy
        'secret = "<your-secret-here>"',
    ],
)
def test_scanner_ignores_placeholders_and_env_lookups(line: str) -> None:
    assert scan_text("app/settings.py", line) == []


async def test_sec_fails_on_a_committed_secret_and_reports_findings(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    (workspace / "app" / "config.py").write_text(f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n')
    (workspace / "untracked.py").write_text(f'KEY = "{AWS_KEY}"\n')  # not tracked: not scanned
    git(workspace, "add", "app/config.py")
    git(workspace, "commit", "-q", "-m", "Add config")
    fake.queue(
        Reply.tool("read_file", path="app/config.py"), Reply.tool("finish", status="pass", summary="ok")
    )
    result = await run_agent(make_job("sec"))
    assert result.status is Verdict.FAIL
    secrets = [(f.rule, f.path, f.line, f.severity) for f in result.findings if f.tool == "secret-scan"]
    assert secrets == [("aws-access-key-id", "app/config.py", 1, "high")]
    assert "secret-scan: 1 finding(s)" in result.summary
    # Backend none: the host's minimal PATH has no bandit; said, not passed silently.
    assert "bandit: skipped: bandit not installed" in result.summary
    assert "app/config.py:1: aws-access-key-id" in fake.requests[0]["messages"][1]["content"]
    assert {t["function"]["name"] for t in fake.requests[0]["tools"]} == {
        "list_files",
        "read_file",
        "search",
        "run",
        "finish",
    }


async def test_sec_passes_a_clean_workspace_and_says_what_it_skipped(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner
) -> None:
    fake.queue(
        Reply.tool("finish", status="pass", summary="Input is parsed with float(); no injection surface")
    )
    result = await run_agent(make_job("sec"))
    assert result.status is Verdict.PASS
    assert [f.severity for f in result.findings] == ["info"]  # bandit skipped: not installed
    assert "secret-scan: 0 finding(s)" in result.summary
    assert "bandit: skipped: bandit not installed in the sandbox" in result.summary


async def test_sec_agent_fail_fails_the_stage(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner
) -> None:
    fake.queue(Reply.tool("finish", status="fail", summary="app/db.py:3 builds SQL by string concatenation"))
    result = await run_agent(make_job("sec"))
    assert result.status is Verdict.FAIL
    assert "string concatenation" in result.summary


async def test_docs_documents_and_commits(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.tool("write_file", path="README.md", content="# ListSnap\n\n`parse_price('$1.50')` -> 1.5\n"),
        Reply.tool("edit_file", path="README.md", old="-> 1.5", new="returns 1.5"),
        Reply.tool("finish", status="pass", summary="Document parse_price in the README"),
    )
    job = make_job("docs")
    result = await run_agent(job)
    assert result.status is Verdict.PASS
    assert result.files_changed == ["README.md"]
    assert log_subjects(workspace)[0] == "T-002: Document add price parser"
    assert (workspace / "README.md").read_text().endswith("returns 1.5\n")
    assert last_message(fake.requests[2])["content"].startswith("edited README.md")
    again = await run_agent(job)
    assert again.commits == result.commits
    assert len(fake.requests) == 3
