"""Each role doing its real job in a bubblewrap sandbox: SEC's scanners, QA's JUnit verdict and its
tampering check, DOCS' check, TESTING's E2E run (Playwright with Debian's Chromium), and an external
coding agent CLI as executor."""

from __future__ import annotations

import base64
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from wf_agent_runner.agents.base import Agent, AgentContext
from wf_agent_runner.agents.cli import CliAgent
from wf_agent_runner.agents.dev import DevAgent
from wf_common.config import ExecutorConfig
from wf_common.states import Verdict

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.roles.conftest import TOOLS, RoleRunner, make_job
from tests.runner.helpers import PRICES_TEST, git, log_subjects

PASSWORD = "q8Zr2xLw" + "9PvT4mNc"  # split so this file itself does not look like a leak
EVAL_HANDLER = '''\
def calculate(request):
    """Evaluate the expression the user typed."""
    return eval(request.args["expr"])
'''


async def test_sec_finds_secret_eval_and_history_and_reports_the_offline_audit_as_skipped(
    fake: ScriptedOllama, run_role: RoleRunner, workspace: Path
) -> None:
    (workspace / "app" / "old.py").write_text(f'db_password = "{PASSWORD}x"\n')
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "T-002: Add settings")
    (workspace / "app" / "old.py").unlink()  # removed again: still in the history
    (workspace / "app" / "calc.py").write_text(EVAL_HANDLER)
    (workspace / "app" / "settings.py").write_text(f'PASSWORD = "{PASSWORD}"\n')
    (workspace / "requirements.txt").write_text("requests==2.19.0\n")
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "T-002: Add calculator")
    fake.queue(Reply.tool("finish", status="pass", summary="Checked the OWASP Top 10"))

    result = await run_role(make_job(workspace, "sec"))

    assert result.status is Verdict.FAIL, result.summary
    by_tool = {(f.tool, f.rule.split(":")[0]): f for f in result.findings}
    evil = by_tool[("bandit", "B307")]
    assert (evil.path, evil.line, evil.severity) == ("app/calc.py", 3, "high")
    secret = by_tool[("secret-scan", "hardcoded-secret")]
    assert (secret.path, secret.line, secret.severity) == ("app/settings.py", 1, "high")
    assert PASSWORD not in secret.message
    history = by_tool[("secret-scan", "hardcoded-secret-in-history")]
    assert history.path == "app/old.py"
    assert "commit" in history.message
    audit = by_tool[("pip-audit", "pip-audit-skipped")]
    assert audit.message.startswith("skipped: offline")
    assert audit.severity == "info"
    assert "pip-audit: skipped: offline" in result.summary
    assert "B307" in result.summary


async def test_sec_passes_clean_code_with_low_findings_attached(
    fake: ScriptedOllama, run_role: RoleRunner, workspace: Path
) -> None:
    (workspace / "app" / "shell.py").write_text("import subprocess\n\nVERSION = 1\n")
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "T-002: Add shell helper")
    fake.queue(Reply.tool("finish", status="pass", summary="Nothing found"))
    result = await run_role(make_job(workspace, "sec"))
    assert result.status is Verdict.PASS, result.summary
    [low] = [f for f in result.findings if f.tool == "bandit"]
    assert low.rule.startswith("B404")
    assert low.severity == "low"


PACKAGE_LOCK = """{
  "name": "shop-ui",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {"name": "shop-ui", "version": "1.0.0", "dependencies": {"lodash": "4.17.15"}},
    "node_modules/lodash": {
      "version": "4.17.15",
      "resolved": "https://registry.example.test/lodash/-/lodash-4.17.15.tgz"
    }
  }
}
"""


async def test_sec_runs_npm_audit_on_a_lockfile_and_reports_offline_as_skipped(
    fake: ScriptedOllama, run_role: RoleRunner, workspace: Path
) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed on this machine (Debian: apt-get install npm)")
    (workspace / "web").mkdir()
    (workspace / "web" / "package.json").write_text(
        '{"name": "shop-ui", "version": "1.0.0", "dependencies": {"lodash": "4.17.15"}}\n'
    )
    (workspace / "web" / "package-lock.json").write_text(PACKAGE_LOCK)
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "T-002: Add the web UI")
    fake.queue(Reply.tool("finish", status="pass", summary="Nothing found"))

    result = await run_role(make_job(workspace, "sec"))  # bubblewrap: no network in the sandbox

    [audit] = [f for f in result.findings if f.tool == "npm-audit"]
    assert audit.path == "web/package-lock.json"
    assert audit.message.startswith("skipped: offline"), audit.message
    assert audit.severity == "info"
    assert "npm-audit: skipped: offline" in result.summary


async def test_sec_says_a_missing_scanner_is_skipped(
    fake: ScriptedOllama, run_role: RoleRunner, workspace: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "no-tools"
    (empty / "bin").mkdir(parents=True)
    fake.queue(Reply.tool("finish", status="pass", summary="ok"))
    result = await run_role(make_job(workspace, "sec"), tools_dir=str(empty))
    skipped = [f for f in result.findings if f.tool == "bandit"]
    assert [f.message for f in skipped] == ["skipped: bandit not installed in the sandbox"]
    assert "bandit: skipped: bandit not installed" in result.summary


async def test_qa_lists_each_failing_test_with_its_output_from_junit(
    fake: ScriptedOllama, run_role: RoleRunner, workspace: Path
) -> None:
    failing = "from app.prices import parse_price\n\n\ndef test_euro():\n    print('trying euro')\n"
    failing += "    assert parse_price('€3') == 3\n"
    fake.queue(
        Reply.tool("write_file", path="tests/test_euro.py", content=failing),
        Reply.tool("finish", status="pass", summary="Covered"),
    )
    result = await run_role(make_job(workspace, "qa"))
    assert result.status is Verdict.FAIL
    assert result.test_run is not None
    [failure] = result.test_run.failures
    assert failure.name == "tests.test_euro::test_euro"
    assert "trying euro" in failure.output
    assert "ValueError" in failure.output
    assert "tests.test_euro::test_euro" in result.summary
    assert result.findings == []


async def test_qa_tampering_is_flagged(fake: ScriptedOllama, run_role: RoleRunner, workspace: Path) -> None:
    weakened = "import pytest\n\n\n@pytest.mark.skip(reason='flaky')\ndef test_other():\n    assert False\n"
    fake.queue(
        Reply.tool("write_file", path="tests/test_prices.py", content=weakened),
        Reply.tool("write_file", path="tests/conftest.py", content="collect_ignore = ['test_x.py']\n"),
        Reply.tool("finish", status="pass", summary="All good"),
    )
    result = await run_role(make_job(workspace, "qa"))
    assert result.status is Verdict.FAIL  # the run passes (1 skipped); the tampering does not
    assert result.test_run is not None
    assert result.test_run.passed
    rules = {(f.rule, f.path) for f in result.findings}
    assert ("qa-removed-test", "tests/test_prices.py") in rules
    assert ("qa-added-skip", "tests/test_prices.py") in rules
    assert ("qa-edited-conftest", "tests/conftest.py") in rules
    assert result.summary.startswith("QA changed existing tests; flagged for review")
    assert "removed the existing test test_parse_price" in result.summary


async def test_qa_adding_tests_is_not_flagged(
    fake: ScriptedOllama, run_role: RoleRunner, workspace: Path
) -> None:
    more = PRICES_TEST + "\n\ndef test_plain() -> None:\n    assert parse_price('3') == 3\n"
    fake.queue(
        Reply.tool("write_file", path="tests/test_prices.py", content=more),
        Reply.tool("finish", status="pass", summary="Covered"),
    )
    result = await run_role(make_job(workspace, "qa"))
    assert result.status is Verdict.PASS, result.summary
    assert result.findings == []


async def test_docs_fails_when_code_changed_without_docs(
    fake: ScriptedOllama, run_role: RoleRunner, workspace: Path
) -> None:
    (workspace / "app" / "prices.py").write_text("def parse_price(text):\n    return 0.0\n")
    git(workspace, "commit", "-q", "-am", "T-002: Change the parser")
    fake.queue(Reply.tool("finish", status="pass", summary="Nothing to document"))
    result = await run_role(make_job(workspace, "docs"))
    assert result.status is Verdict.FAIL
    assert result.summary.startswith(
        "the change alters behaviour (app/prices.py) but no documentation changed"
    )


async def test_docs_passes_when_it_documents_the_change(
    fake: ScriptedOllama, run_role: RoleRunner, workspace: Path
) -> None:
    (workspace / "app" / "prices.py").write_text("def parse_price(text):\n    return 0.0\n")
    git(workspace, "commit", "-q", "-am", "T-002: Change the parser")
    fake.queue(
        Reply.tool("write_file", path="CHANGELOG.md", content="## Unreleased\n- parse_price returns 0.0\n"),
        Reply.tool("finish", status="pass", summary="Documented the parser change"),
    )
    result = await run_role(make_job(workspace, "docs"))
    assert result.status is Verdict.PASS, result.summary
    assert result.files_changed == ["CHANGELOG.md"]


async def test_testing_without_e2e_command_says_skipped(
    fake: ScriptedOllama, run_role: RoleRunner, workspace: Path
) -> None:
    fake.queue(Reply.tool("finish", status="pass", summary="Looked fine"))
    result = await run_role(make_job(workspace, "testing"))
    assert result.skipped == "skipped: no E2E command configured"
    assert result.summary.startswith("skipped: no E2E command configured")


E2E = '''\
"""A Playwright check of the page, on Debian's Chromium; a failure leaves a screenshot."""
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

page_file = Path("site/index.html").resolve()
Path("test-results").mkdir(exist_ok=True)
with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path="/usr/bin/chromium",
        args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage"],
    )
    page = browser.new_page()
    page.goto(page_file.as_uri())
    title = page.inner_text("h1")
    if title != "Price list":
        page.screenshot(path="test-results/failure.png")
        print(f"FAILED: the heading is {title!r}, expected 'Price list'")
        browser.close()
        sys.exit(1)
    browser.close()
print("e2e passed")
'''


async def test_testing_runs_playwright_and_attaches_a_failure_screenshot(
    fake: ScriptedOllama, run_role: RoleRunner, workspace: Path
) -> None:
    (workspace / "site").mkdir()
    (workspace / "site" / "index.html").write_text("<html><body><h1>Price lst</h1></body></html>")
    (workspace / "e2e").mkdir()
    (workspace / "e2e" / "check_page.py").write_text(E2E)
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "T-002: Add page")
    fake.queue(Reply.tool("finish", status="pass", summary="Looked fine"))
    job = make_job(workspace, "testing", e2e_command="python3 e2e/check_page.py")

    result = await run_role(job)

    assert result.status is Verdict.FAIL, result.summary
    assert result.skipped is None
    log = base64.b64decode(next(f for f in result.files if f.filename == "e2e-output.txt").content_b64)
    assert "the heading is 'Price lst'" in log.decode(), log.decode()
    names = {f.filename: f for f in result.files}
    shot = names["test-results_failure.png"]
    assert shot.content_type == "image/png"
    assert base64.b64decode(shot.content_b64).startswith(b"\x89PNG")
    assert result.summary.startswith("E2E `python3 e2e/check_page.py`: tests failed")


async def test_testing_e2e_passes_on_the_right_page(
    fake: ScriptedOllama, run_role: RoleRunner, workspace: Path
) -> None:
    (workspace / "site").mkdir()
    (workspace / "site" / "index.html").write_text("<html><body><h1>Price list</h1></body></html>")
    (workspace / "e2e").mkdir()
    (workspace / "e2e" / "check_page.py").write_text(E2E)
    fake.queue(Reply.tool("finish", status="pass", summary="Looked fine"))
    result = await run_role(make_job(workspace, "testing", e2e_command="python3 e2e/check_page.py"))
    assert result.status is Verdict.PASS, result.summary
    assert result.files == []


FAKE_GOOSE = """\
#!/bin/sh
# A stand-in for `goose run -i FILE`: checks it got the role's prompt, edits a file, exits non-zero.
[ "$1" = run ] && [ "$2" = --no-session ] && [ "$3" = -i ] || { echo "usage: goose run -i FILE"; exit 2; }
grep -q "Add price parser" "$4" || { echo "prompt file without the task"; exit 2; }
[ "${FAKE_GOOSE_NOOP:-}" = 1 ] && exit 0
printf '\\n\\ndef parse_euro(text):\\n    return float(text.strip("€"))\\n' >> app/prices.py
echo "goose: edited app/prices.py"
exit 3
"""


def fake_goose(tmp_path: Path, *, noop: bool = False) -> Path:
    # Not under /tmp: the sandbox's /tmp is its own tmpfs.
    bin_dir = TOOLS.parent / "test-agents" / tmp_path.name
    shutil.rmtree(bin_dir, ignore_errors=True)
    bin_dir.mkdir(parents=True)
    script = bin_dir / "goose"
    script.write_text(FAKE_GOOSE.replace('"${FAKE_GOOSE_NOOP:-}" = 1', "1 = 1" if noop else "1 = 0"))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


def goose_agent(bin_dir: Path) -> Callable[[AgentContext], Agent]:
    executor = ExecutorConfig(kind="cli", command=f"{bin_dir}/goose run --no-session -i {{prompt_file}}")

    def make(ctx: AgentContext) -> Agent:
        return CliAgent(ctx, executor, DevAgent.instructions)

    return make


async def test_cli_executor_is_judged_by_the_workspace_not_its_exit_code(
    run_role: RoleRunner, workspace: Path, tmp_path: Path
) -> None:
    bin_dir = fake_goose(tmp_path)
    job = make_job(workspace, "dev")
    result = await run_role(job, make=goose_agent(bin_dir), bubblewrap_ro_paths=[str(bin_dir)])
    assert result.status is Verdict.PASS, result.summary
    assert result.files_changed == ["app/prices.py"]
    assert "def parse_euro" in (workspace / "app" / "prices.py").read_text()
    assert log_subjects(workspace)[0] == "T-002: Add price parser"
    assert f"Workflow-Job: {job.idempotency_key}" in git(workspace, "log", "-1", "--format=%B")
    assert "the coding agent exited with 3" in result.summary
    assert result.test_run is not None
    assert result.test_run.passed
    prompts = list((workspace / ".workflow" / "agent_logs" / "prompts").iterdir())
    assert [p.name for p in prompts] == ["dev-7-1.md"]
    assert "Add price parser" in prompts[0].read_text()


async def test_cli_executor_that_changes_nothing_fails(
    run_role: RoleRunner, workspace: Path, tmp_path: Path
) -> None:
    bin_dir = fake_goose(tmp_path, noop=True)
    head = git(workspace, "rev-parse", "HEAD")
    result = await run_role(
        make_job(workspace, "dev"), make=goose_agent(bin_dir), bubblewrap_ro_paths=[str(bin_dir)]
    )
    assert result.status is Verdict.FAIL
    assert result.summary.startswith("The coding agent changed nothing in the workspace.")
    assert "exited with 0" in result.summary
    assert git(workspace, "rev-parse", "HEAD") == head


def test_cli_presets_quote_the_prompt_file() -> None:
    from wf_agent_runner.agents.cli import render

    for preset in ("goose", "aider", "claude", "codex"):
        template = ExecutorConfig(kind="cli", preset=preset).template
        command = render(template, ".workflow/prompts/x $(rm -rf).md")
        assert "'.workflow/prompts/x $(rm -rf).md'" in command
    assert os.sep == "/"
