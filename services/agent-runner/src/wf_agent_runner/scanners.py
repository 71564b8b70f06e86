"""SEC's scanners, each run in the job's sandbox (never on the host): bandit for Python, pip-audit and
npm audit for dependencies. The runner's own secret scan (secrets_scan.py) reads the tracked files
and the branch's history with git.

A scanner that cannot do its job says so as a finding ("skipped: bandit not installed", "skipped:
offline"), never as a silent pass. Reports are written by the scanner into the workspace's
`.workflow/agent_logs/sec/` and read back through the confined opener (they may be large; stdout is capped).
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wf_common.jobs import Finding, Severity

from wf_agent_runner import confined, taskdiff
from wf_agent_runner.sandbox.base import Sandbox
from wf_agent_runner.secrets_scan import scan_text

REPORT_DIR = ".workflow/agent_logs/sec"  # ignored (.workflow/.gitignore): the worktree stays clean
MAX_REPORT_BYTES = 20_000_000
NOT_FOUND = 127
MAX_FINDINGS_PER_TOOL = 100
# bandit rates eval/exec/shell injection/SQL built from strings "medium"; with high confidence they are
# code execution or injection, which SEC treats as high (a bug for DEV).
CODE_EXECUTION = {"B102", "B307", "B602", "B605", "B608", "B301", "B506"}
_OFFLINE = re.compile(
    r"ConnectionError|Max retries exceeded|NameResolutionError|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|NewConnectionError|Failed to establish|"
    r"ENOTFOUND|EAI_AGAIN|ENETUNREACH|ECONNREFUSED|getaddrinfo",
)


@dataclass
class ToolReport:
    tool: str
    status: str  # "ran", or "skipped: …"
    findings: list[Finding] = field(default_factory=list)

    @property
    def line(self) -> str:
        if self.status != "ran":
            return f"{self.tool}: {self.status}"
        return f"{self.tool}: {len(self.findings)} finding(s)"


def skipped(tool: str, why: str, path: str = "") -> ToolReport:
    finding = Finding(
        rule=f"{tool}-skipped", path=path, message=f"skipped: {why}", severity="info", tool=tool
    )
    return ToolReport(tool, f"skipped: {why}", [finding])


def _guarded(tool: str, command: str) -> str:
    """`command`, exiting 127 at once when the tool is not on the sandbox's PATH."""
    return f"command -v {tool} >/dev/null 2>&1 || exit {NOT_FOUND}; {command}"


async def _read_report(root: Path, rel: str) -> bytes:
    def read() -> bytes:
        with confined.rooted(root) as fd:
            return confined.read_bytes(fd, rel, MAX_REPORT_BYTES)[0]

    return await asyncio.to_thread(read)


async def _reset_report(root: Path, rel: str) -> None:
    await asyncio.to_thread(confined.write_under, root, rel, b"")


def _last_line(text: str) -> str:
    return next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")[:300]


# --------------------------------------------------------------------------------------------- bandit


def _severity(result: dict[str, Any]) -> Severity:
    sev = str(result.get("issue_severity", "")).lower()
    conf = str(result.get("issue_confidence", "")).upper()
    if sev == "high" or (sev == "medium" and conf == "HIGH" and result.get("test_id") in CODE_EXECUTION):
        return "high"
    return "medium" if sev == "medium" else "low"


async def bandit(sandbox: Sandbox, root: Path, py_files: list[str], limit: float) -> ToolReport:
    if not py_files:
        return ToolReport("bandit", "ran")  # nothing to scan: not a skip, there is no Python code
    out = f"{REPORT_DIR}/bandit.json"
    await _reset_report(root, out)
    targets = " ".join(shlex.quote(p) for p in py_files[:2000])
    run = await sandbox.run(_guarded("bandit", f"bandit -q -f json -o {shlex.quote(out)} {targets}"), limit)
    if run.exit_code == NOT_FOUND:
        return skipped("bandit", "bandit not installed in the sandbox")
    if run.limit_hit:
        return skipped("bandit", f"bandit hit the sandbox's {run.limit_hit} limit")
    try:
        data = json.loads(await _read_report(root, out) or b"{}")
    except (OSError, confined.ConfinementError, ValueError):
        return skipped("bandit", f"bandit wrote no report (exit {run.exit_code}): {_last_line(run.stderr)}")
    findings = [
        Finding(
            rule=f"{r.get('test_id', '?')}:{r.get('test_name', '?')}",
            path=str(r.get("filename", "")).removeprefix("./"),
            line=r.get("line_number") if isinstance(r.get("line_number"), int) else None,
            message=str(r.get("issue_text", ""))[:500]
            + f" (bandit severity {r.get('issue_severity')}, confidence {r.get('issue_confidence')})",
            severity=_severity(r),
            tool="bandit",
        )
        for r in data.get("results", [])[:MAX_FINDINGS_PER_TOOL]
        if isinstance(r, dict)
    ]
    return ToolReport("bandit", "ran", findings)


# ---------------------------------------------------------------------------------------- secret scan


async def secrets_in_history(root: Path, current: list[Finding]) -> list[Finding]:
    """Secrets added anywhere in the branch's history (`git log -p`), also those a later commit
    removed: they are still in every clone. A secret still in the tracked files is reported once."""
    added, _ = taskdiff.parse_patch(await taskdiff.history_patch(root))
    seen = {(f.path, f.message) for f in current}
    findings: list[Finding] = []
    for d in added:
        for f in scan_text(d.path, d.text):
            if (f.path, f.message) in seen:
                continue
            seen.add((f.path, f.message))
            findings.append(
                f.model_copy(
                    update={
                        "line": d.line,
                        "rule": f"{f.rule}-in-history",
                        "message": f"{f.message} (added in commit {d.commit[:10]}; still in the history "
                        "even if removed later: rotate it)",
                        "severity": "high",
                        "tool": "secret-scan",
                    }
                )
            )
            if len(findings) >= MAX_FINDINGS_PER_TOOL:
                return findings
    return findings


# ----------------------------------------------------------------------------------- dependency audit


def _pyproject_requirements(text: str) -> list[str]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    project = data.get("project", {})
    deps = project.get("dependencies", []) if isinstance(project, dict) else []
    return [d for d in deps if isinstance(d, str)]


def _audit_failure(tool: str, output: str, code: int | None, path: str) -> ToolReport:
    if _OFFLINE.search(output):
        return skipped(tool, "offline (the vulnerability database cannot be reached from the sandbox)", path)
    return skipped(tool, f"{tool} failed (exit {code}): {_last_line(output)}", path)


async def pip_audit(sandbox: Sandbox, root: Path, tracked: list[str], limit: float) -> ToolReport:
    inputs: list[tuple[str, str]] = []  # (requirements file to audit, where it came from)
    for rel in tracked:
        name = rel.rsplit("/", 1)[-1]
        if re.fullmatch(r"requirements[\w.-]*\.txt", name):
            inputs.append((rel, rel))
        elif name == "pyproject.toml":
            try:
                text = (await _read_report(root, rel)).decode("utf-8", "replace")
            except (OSError, confined.ConfinementError):
                continue
            if deps := _pyproject_requirements(text):
                req = f"{REPORT_DIR}/requirements-from-{len(inputs)}.txt"
                await asyncio.to_thread(confined.write_under, root, req, ("\n".join(deps) + "\n").encode())
                inputs.append((req, rel))
    if not inputs:
        return ToolReport("pip-audit", "ran")  # no Python dependencies declared
    report = ToolReport("pip-audit", "ran")
    for req, source in inputs:
        out = f"{REPORT_DIR}/pip-audit-{len(report.findings)}.json"
        await _reset_report(root, out)
        cmd = (
            f"pip-audit -r {shlex.quote(req)} --no-deps --disable-pip --progress-spinner off "
            f"-f json -o {shlex.quote(out)}"
        )
        run = await sandbox.run(_guarded("pip-audit", cmd), limit)
        if run.exit_code == NOT_FOUND:
            return skipped("pip-audit", "pip-audit not installed in the sandbox", source)
        try:
            data = json.loads(await _read_report(root, out) or b"null")
        except (OSError, confined.ConfinementError, ValueError):
            data = None
        if not isinstance(data, dict):
            failed = _audit_failure("pip-audit", run.stdout + run.stderr, run.exit_code, source)
            report.status = failed.status
            report.findings += failed.findings
            continue
        for dep in data.get("dependencies", []):
            for v in dep.get("vulns", []) if isinstance(dep, dict) else []:
                fixes = ", ".join(v.get("fix_versions", [])) or "none yet"
                report.findings.append(
                    Finding(
                        rule=str(v.get("id", "vulnerability")),
                        path=source,
                        message=f"{dep.get('name')} {dep.get('version')}: "
                        f"{str(v.get('description', ''))[:300]} (fixed in: {fixes})",
                        severity="high",
                        tool="pip-audit",
                    )
                )
    return report


async def npm_audit(sandbox: Sandbox, root: Path, tracked: list[str], limit: float) -> ToolReport:
    locks = [p for p in tracked if p.rsplit("/", 1)[-1] == "package-lock.json"]
    if not locks:
        return ToolReport("npm-audit", "ran")
    report = ToolReport("npm-audit", "ran")
    for lock in locks:
        where = lock.rsplit("/", 1)[0] if "/" in lock else "."
        run = await sandbox.run(
            _guarded("npm", f"cd {shlex.quote(where)} && npm audit --json --package-lock-only"), limit
        )
        if run.exit_code == NOT_FOUND:
            return skipped("npm-audit", "npm not installed in the sandbox", lock)
        try:
            data = json.loads(run.stdout)
        except ValueError:
            data = None
        if not isinstance(data, dict) or "error" in data or "vulnerabilities" not in data:
            failed = _audit_failure("npm-audit", run.stdout + run.stderr, run.exit_code, lock)
            report.status = failed.status
            report.findings += failed.findings
            continue
        for name, v in data["vulnerabilities"].items():
            sev = str(v.get("severity", "")) if isinstance(v, dict) else ""
            report.findings.append(
                Finding(
                    rule="npm-vulnerability",
                    path=lock,
                    message=f"{name}: {sev} vulnerability (npm audit)",
                    severity="high" if sev in ("high", "critical") else "medium",
                    tool="npm-audit",
                )
            )
    return report
