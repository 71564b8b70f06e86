"""Read the JUnit XML a test run wrote (pytest --junitxml): which tests failed, with their output.

The file comes from a run of model-written tests, so it is untrusted: it is read through the confined
opener with a size cap, a document with a DTD (entity definitions: "billion laughs", external
entities) is refused before parsing, and every text taken from it is clipped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from wf_common.jobs import TestFailure

MAX_XML_BYTES = 5_000_000
MAX_FAILURES = 50
MESSAGE_CHARS = 500
OUTPUT_CHARS = 3000
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)


class JUnitError(ValueError):
    """The XML is missing, too large, has a DTD or is not JUnit XML; the message says which."""


@dataclass
class JUnitReport:
    tests: int = 0
    failures: list[TestFailure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 20] + "\n[... cut ...]"


def _name(case: ET.Element) -> str:
    """pytest's node id where it can be rebuilt: classname 'tests.test_a.TestX' + name 'test_y'."""
    cls = case.get("classname", "")
    name = case.get("name", "?")
    file = case.get("file")
    if file:
        rest = cls.split(".")
        module = file.removesuffix(".py").replace("/", ".")
        inner = rest[len(module.split(".")) :] if cls.startswith(module) else []
        return "::".join([file, *inner, name])
    return f"{cls}::{name}" if cls else name


def parse_junit(data: bytes) -> JUnitReport:
    if len(data) > MAX_XML_BYTES:
        raise JUnitError(f"the JUnit XML is larger than {MAX_XML_BYTES} bytes")
    if _DTD.search(data):
        raise JUnitError("the JUnit XML contains a DTD or entity declaration; refused")
    try:
        root = ET.fromstring(data)  # noqa: S314 - no DTD (checked above): no entities to expand
    except ET.ParseError as err:
        raise JUnitError(f"the JUnit XML cannot be parsed: {err}") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise JUnitError(f"not JUnit XML (root element <{root.tag}>)")
    report = JUnitReport()
    for case in root.iter("testcase"):
        report.tests += 1
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            if len(report.failures) < MAX_FAILURES:
                output = "\n".join(
                    part
                    for part in (
                        bad.text or "",
                        (case.findtext("system-out") or ""),
                        (case.findtext("system-err") or ""),
                    )
                    if part.strip()
                )
                report.failures.append(
                    TestFailure(
                        name=_name(case),
                        message=_clip(bad.get("message", bad.tag), MESSAGE_CHARS),
                        output=_clip(output, OUTPUT_CHARS),
                    )
                )
        elif case.find("skipped") is not None:
            report.skipped.append(_name(case))
    return report
