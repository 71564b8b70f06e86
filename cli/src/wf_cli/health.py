"""Is the stack up? `GET /health` on the board answers 200 once it can reach everything it needs.

When it does not, its body usually says which check fails; `probe()` turns that (or the lack of
any answer) into one line for the user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from wf_cli.text import cell

_GOOD = {"ok", "up", "pass", "passed", "healthy", "ready", "true"}


@dataclass(frozen=True)
class Probe:
    ok: bool
    detail: str = ""


async def probe(client: httpx.AsyncClient, url: str) -> Probe:
    try:
        resp = await client.get(url, timeout=3.0)
    except (httpx.ConnectError, httpx.ConnectTimeout):
        return Probe(False, f"nothing answers at {url} yet")
    except httpx.TimeoutException:
        return Probe(False, f"{url} did not answer within 3s")
    except httpx.HTTPError as exc:
        return Probe(False, f"{url}: {exc}")
    if resp.status_code == 200:
        return Probe(True)
    try:
        body: Any = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = resp.text
    failing = failing_checks(body)
    what = "; ".join(failing) if failing else cell(body if isinstance(body, str) else json.dumps(body), 300)
    return Probe(False, f"{url} answered {resp.status_code}: {what}")


def failing_checks(body: Any) -> list[str]:
    """What a health body says is wrong: its own `message` when it has one (the board's does:
    ``not ready: database: ...; runners: ...``), else `name: why` for each check that is not ok,
    whatever the shape: {"checks": {"nats": "ok", "database": "down"}}, {"nats": {"ok": false}}."""
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("message"), str) and body["message"].strip():
        return [cell(body["message"], 400)]
    checks = body.get("checks", body)
    if isinstance(checks, list):
        checks = {str(c.get("name", i)): c for i, c in enumerate(checks) if isinstance(c, dict)}
    if not isinstance(checks, dict):
        return []
    failing = []
    for name, value in checks.items():
        if name in ("status", "message", "error", "version", "checks") and checks is body:
            continue
        if _is_good(value):
            continue
        if isinstance(value, dict):
            why = value.get("error") or value.get("message") or value.get("detail") or value.get("status")
            failing.append(f"{cell(name, 40)}: {cell(why if why is not None else json.dumps(value), 200)}")
        else:
            failing.append(f"{cell(name, 40)}: {cell(value, 200)}")
    return failing


def _is_good(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):  # a count, e.g. live runners
        return value > 0
    if isinstance(value, str):
        return value.strip().lower() in _GOOD
    if isinstance(value, dict):
        for key in ("ok", "healthy"):
            if key in value:
                return value[key] is True
        if "status" in value:
            return _is_good(value["status"])
    return False
