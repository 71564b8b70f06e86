"""Spot a QA change that weakens the existing tests instead of testing the task: a removed
`def test_`, an added skip/xfail, or any change to a `conftest.py`. Read from the patch of the QA
execution's commits; what is found is flagged in the bug (as findings), never silently accepted."""

from __future__ import annotations

import posixpath
import re

from wf_common.jobs import Finding

from wf_agent_runner.taskdiff import parse_patch

_TEST_DEF = re.compile(r"^\s*(?:async\s+)?def\s+(test_\w*)")
_SKIP = re.compile(r"pytest\.mark\.(?:skip|skipif|xfail)\b|pytest\.(?:skip|xfail)\s*\(|unittest\.skip")


def tampering(patch: str) -> list[Finding]:
    added, removed = parse_patch(patch)
    findings: list[Finding] = []
    conftests = sorted({d.path for d in (*added, *removed) if posixpath.basename(d.path) == "conftest.py"})
    for path in conftests:
        findings.append(
            Finding(
                rule="qa-edited-conftest",
                path=path,
                message="QA changed conftest.py, which can change how every test runs; "
                "a human should review it",
                severity="high",
                tool="qa-diff",
            )
        )
    kept = {(d.path, m.group(1)) for d in added if (m := _TEST_DEF.match(d.text))}
    for d in removed:
        m = _TEST_DEF.match(d.text)
        if m and (d.path, m.group(1)) not in kept:  # a test moved within its file is not a removal
            findings.append(
                Finding(
                    rule="qa-removed-test",
                    path=d.path,
                    line=d.line or None,
                    message=f"QA removed the existing test {m.group(1)}",
                    severity="high",
                    tool="qa-diff",
                )
            )
    for d in added:
        if posixpath.basename(d.path) != "conftest.py" and _SKIP.search(d.text):
            findings.append(
                Finding(
                    rule="qa-added-skip",
                    path=d.path,
                    line=d.line,
                    message=f"QA added a skip/xfail: {d.text.strip()[:200]}",
                    severity="high",
                    tool="qa-diff",
                )
            )
    return findings
