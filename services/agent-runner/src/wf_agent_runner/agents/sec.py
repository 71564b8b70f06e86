"""SEC: a deterministic secret scan of the tracked files plus a read-only review by the model.

The stage fails if the scan finds anything or the agent finishes with 'fail'. The summary says what
was and was not checked: dependency audits and deep scanners are not run in this version.
"""

from __future__ import annotations

import asyncio

from wf_common.jobs import Finding, Result
from wf_common.states import Verdict

from wf_agent_runner import gitrepo
from wf_agent_runner.agents.base import Agent
from wf_agent_runner.agents.verdicts import agent_verdict
from wf_agent_runner.prompts import Prompt
from wf_agent_runner.secrets_scan import ScanReport, scan_files
from wf_agent_runner.tools import READ_ONLY_TOOLS
from wf_agent_runner.workspace import Workspace

NOT_RUN = (
    "Not run in this version: dependency vulnerability audits (pip-audit, npm audit) and deep "
    "static-analysis scanners; the review above is the model's reading of the code."
)


class SecAgent(Agent):
    role = "sec"
    tools = (*READ_ONLY_TOOLS[:-1], "run", "finish")  # run: scanners, in the sandbox
    instructions = """\
You review the change for security problems. You can read the workspace (list_files, read_file,
search) but not change it; run executes a scanner or another command in a sandbox if one helps.
A built-in scan for hardcoded secrets has already run; its findings are listed below.
Review authentication and authorization logic, input validation, and injection risks (SQL, XSS,
command) in the code the task touched, and how sensitive data is stored and sent.
Call finish(status="fail", summary=<each problem: file, line, why, how to fix>) if you find a real
problem, else finish(status="pass", summary=<what you checked>)."""

    async def run(self) -> Result:
        root = self.ctx.workspace
        scan = await asyncio.to_thread(scan_files, root, await gitrepo.tracked_files(root))
        await self.out.emit("log", _scan_line(scan))
        for f in scan.findings:
            await self.out.emit("error", f"{f.path}:{f.line}: {f.rule}: {f.message}")
        prompt = await self.prompt()
        prompt = Prompt(
            prompt.system, f"{prompt.user}\n\n## Secret Scan Findings\n{_findings_text(scan.findings)}"
        )
        loop = await self.tool_loop(self.toolbox(Workspace(root)), prompt)
        agent_ok, agent_text = agent_verdict(loop)
        passed = agent_ok and not scan.findings
        summary = "\n\n".join(
            [
                f"Secret scan: {_scan_line(scan)}",
                f"Agent review ({'pass' if agent_ok else 'fail'}): {agent_text}",
                NOT_RUN,
            ]
        )
        return self.result(Verdict.PASS if passed else Verdict.FAIL, summary, findings=scan.findings)


def _scan_line(scan: ScanReport) -> str:
    skipped = f", {scan.skipped} skipped (binary or over 1 MB)" if scan.skipped else ""
    return (
        f"{scan.files_scanned} tracked files scanned for hardcoded secrets (AWS keys, private keys, "
        f"tokens, password/api_key assignments){skipped}: {len(scan.findings)} finding(s)"
    )


def _findings_text(findings: list[Finding]) -> str:
    if not findings:
        return "(none)"
    return "\n".join(f"- {f.path}:{f.line}: {f.rule}: {f.message}" for f in findings[:50])
