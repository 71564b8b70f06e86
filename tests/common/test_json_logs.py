"""`logging: json_lines` (WF_LOG_JSON): every record is one JSON object on one line."""

from __future__ import annotations

import json
import subprocess
import sys

SNIPPET = """
import logging
from wf_common.settings import setup_logging
setup_logging("INFO", json_lines=True, name="orchestrator")
log = logging.getLogger("wf_orchestrator.test")
log.info("plain %s", "text")
log.warning('quotes " and \\\\ backslashes and\\na second line')
try:
    raise ValueError("boom")
except ValueError:
    log.exception("it failed: %r", {"k": 'v'})
"""


def test_json_lines_are_json_one_object_per_line() -> None:
    out = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, check=True).stderr
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["msg"] for r in records] == [
        "plain text",
        'quotes " and \\ backslashes and\na second line',
        "it failed: {'k': 'v'}",
    ]
    assert {r["svc"] for r in records} == {"orchestrator"}
    assert [r["lvl"] for r in records] == ["INFO", "WARNING", "ERROR"]
    assert records[0]["log"] == "wf_orchestrator.test"
    assert "ValueError: boom" in records[2]["exc"]
    assert records[0]["t"].endswith("+00:00")
