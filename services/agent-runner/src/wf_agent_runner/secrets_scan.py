"""A deterministic scan of the workspace's tracked files for hardcoded secrets (the SEC stage's floor:
whatever the model concludes, a key in the code fails the stage).

Findings never contain the secret itself, only a masked prefix: they travel over the bus and into
the database. Deep scanners (dependency audit, SAST) are not part of this version.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from wf_common.jobs import Finding

MAX_FILE_BYTES = 1_000_000
MAX_FINDINGS = 200
MIN_ENTROPY = 3.0  # bits per character; "changeme123" is below, random keys are well above
MIN_SECRET_LEN = 8

# Fixed formats: certain enough to report on sight.
_FORMATS: list[tuple[str, re.Pattern[str], str]] = [
    ("aws-access-key-id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "AWS access key id"),
    (
        "private-key",
        re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----"),
        "private key block",
    ),
    ("github-token", re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b"), "GitHub token"),
    ("slack-token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"), "Slack token"),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "Google API key"),
    ("stripe-secret-key", re.compile(r"\b[sr]k_live_[0-9A-Za-z]{20,}\b"), "Stripe live secret key"),
]
# `password = "..."`, `api_key: '...'`, `"auth_token": "..."`: reported if the value looks random.
_ASSIGNMENT = re.compile(
    r"""(?ix)
    \b(?P<name>[a-z0-9_.-]*?(?:password|passwd|pwd|secret|api[_-]?key|apikey|access[_-]?key
        |auth[_-]?token|access[_-]?token|refresh[_-]?token|token|private[_-]?key|client[_-]?secret))
    ["']?\s*[:=]{1,2}\s*
    (?P<q>["'])(?P<value>[^"'\s]{8,})(?P=q)
    """
)
_PLACEHOLDER = re.compile(
    r"(?i)^(?:\$\{.*\}|\{\{.*\}\}|<.*>|%\(.*\)s|x+|\*+|.*(?:example|changeme|your[_-]|dummy).*)$"
)


@dataclass(frozen=True)
class ScanReport:
    files_scanned: int
    findings: list[Finding]
    skipped: int  # binary or too large


def entropy(value: str) -> float:
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _mask(secret: str) -> str:
    return f"{secret[:4]}…({len(secret)} chars)"


def scan_text(path: str, text: str) -> list[Finding]:
    findings: list[Finding] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        known = [
            Finding(rule=rule, path=path, line=lineno, message=f"{what}: {_mask(m.group())}")
            for rule, pattern, what in _FORMATS
            for m in pattern.finditer(line)
        ]
        findings.extend(known)
        if known:  # one secret, one finding: don't report the same key again as an assignment
            continue
        for m in _ASSIGNMENT.finditer(line):
            value = m.group("value")
            if _PLACEHOLDER.match(value) or len(value) < MIN_SECRET_LEN or entropy(value) < MIN_ENTROPY:
                continue
            findings.append(
                Finding(
                    rule="hardcoded-secret",
                    path=path,
                    line=lineno,
                    message=f"{m.group('name')} is assigned a literal that looks like a secret: "
                    f"{_mask(value)}; read it from the environment or a secret store instead",
                )
            )
    return findings


def scan_files(root: Path, paths: list[str]) -> ScanReport:
    findings: list[Finding] = []
    scanned = skipped = 0
    for rel in paths:
        full = root / rel
        try:
            if not full.is_file() or full.is_symlink() or full.stat().st_size > MAX_FILE_BYTES:
                skipped += 1
                continue
            data = full.read_bytes()
        except OSError:
            skipped += 1
            continue
        if b"\x00" in data[:8192]:
            skipped += 1
            continue
        scanned += 1
        findings.extend(scan_text(rel, data.decode("utf-8", errors="replace")))
        if len(findings) >= MAX_FINDINGS:
            break
    return ScanReport(scanned, findings[:MAX_FINDINGS], skipped)
