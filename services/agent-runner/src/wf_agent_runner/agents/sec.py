"""SEC: real scanners in the job's sandbox, a secret scan of the files and of the branch's history,
a dependency audit, and a model review of the change against the OWASP Top 10.

Findings are structured (file, line, rule, severity, tool). Any high-severity finding fails the stage
(a security bug, back to DEV); the others pass with the findings attached to the task. A scanner that
could not run is a finding saying "skipped: …" (offline, not installed), never a silent pass.
"""

from __future__ import annotations

import asyncio

from wf_common.jobs import Finding, Result
from wf_common.states import Verdict

from wf_agent_runner import gitrepo, scanners
from wf_agent_runner.agents.base import Agent
from wf_agent_runner.agents.qa import only_test_files
from wf_agent_runner.agents.verdicts import agent_verdict
from wf_agent_runner.prompts import Prompt
from wf_agent_runner.sandbox import SandboxError
from wf_agent_runner.scanners import ToolReport
from wf_agent_runner.secrets_scan import scan_files
from wf_agent_runner.tools import READ_ONLY_TOOLS
from wf_agent_runner.workspace import Workspace

OWASP_TOP_10 = (
    "A01 Broken Access Control; A02 Cryptographic Failures; A03 Injection (SQL, command, XSS, eval); "
    "A04 Insecure Design; A05 Security Misconfiguration; A06 Vulnerable and Outdated Components; "
    "A07 Identification and Authentication Failures; A08 Software and Data Integrity Failures; "
    "A09 Security Logging and Monitoring Failures; A10 Server-Side Request Forgery"
)


class SecAgent(Agent):
    role = "sec"
    tools = (*READ_ONLY_TOOLS[:-1], "run", "finish")  # run: scanners, in the sandbox
    instructions = f"""\
You review the change for security problems against the OWASP Top 10 (2021): {OWASP_TOP_10}.
You can read the workspace (list_files, read_file, search) but not change it; run executes a command
in a sandbox (no network). The scanners (bandit, a secret scan of the files and the git history, the
dependency audit) have already run; their findings are listed below: do not repeat them, judge them.
Call finish(status="fail", summary=<each problem: file, line, OWASP category, why, how to fix>) if you
find a real problem, else finish(status="pass", summary=<what you checked>)."""

    async def run(self) -> Result:
        root = self.ctx.workspace
        sandbox = self.ctx.sandbox
        if sandbox is None:
            raise SandboxError("no sandbox for the scanners; the runner must open one for the job")
        tracked = await gitrepo.tracked_files(root)
        limit = self.ctx.test_timeout
        scan = await asyncio.to_thread(scan_files, root, tracked)
        for f in scan.findings:
            f.severity, f.tool = "high", "secret-scan"
        history = await scanners.secrets_in_history(root, scan.findings)
        reports = [
            ToolReport("secret-scan", "ran", scan.findings + history),
            await scanners.bandit(sandbox, root, python_sources(tracked), limit),
            await scanners.pip_audit(sandbox, root, tracked, limit),
            await scanners.npm_audit(sandbox, root, tracked, limit),
        ]
        for r in reports:
            await self.out.emit("log", r.line)
        findings = [f for r in reports for f in r.findings]
        prompt = await self.prompt()
        prompt = Prompt(prompt.system, f"{prompt.user}\n\n## Scanner Findings\n{findings_text(findings)}")
        loop = await self.tool_loop(self.toolbox(Workspace(root)), prompt)
        agent_ok, agent_text = agent_verdict(loop)
        if not agent_ok:
            findings.append(
                Finding(
                    rule="owasp-review",
                    path="",
                    message=agent_text[:2000],
                    severity="high" if loop.finish is not None else "info",
                    tool="model-review",
                )
            )
        high = [f for f in findings if f.severity == "high"]
        lines = [
            f"Security review: {len(high)} high-severity finding(s), {len(findings) - len(high)} other(s).",
            *(f"- {r.line}" for r in reports),
            f"- model review (OWASP Top 10): {'pass' if agent_ok else 'fail'}: {agent_text}",
        ]
        if findings:
            lines += ["", "Findings:", findings_text(findings)]
        failed = bool(high) or loop.finish is None
        return self.result(Verdict.FAIL if failed else Verdict.PASS, "\n".join(lines), findings=findings)


def python_sources(tracked: list[str]) -> list[str]:
    """The Python files bandit scans: not the tests (asserts and fixtures there are not findings)."""
    return [p for p in tracked if p.endswith(".py") and only_test_files(p) is not None]


def findings_text(findings: list[Finding]) -> str:
    if not findings:
        return "(none)"
    return "\n".join(
        f"- [{f.severity}] {f.tool}: {f.path or '(project)'}{f':{f.line}' if f.line else ''}: "
        f"{f.rule}: {f.message}"
        for f in findings[:80]
    )
