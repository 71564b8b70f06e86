"""A check for tests that run `wf start`: none of its secrets shows up where others can see it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def install_secrets(data: Path) -> dict[str, str]:
    """name -> value of every secret in `<data>/secrets`."""
    found = {f.name: f.read_text().strip() for f in (data / "secrets").iterdir() if f.is_file()}
    assert found, f"no secrets in {data / 'secrets'}"
    return found


def _command_lines() -> dict[str, str]:
    lines = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                lines[proc.name] = (
                    (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue  # gone meanwhile, or not ours to read
    return lines


def assert_no_secret_leaked(data: Path, pids: Iterable[int] = (), texts: Iterable[str] = ()) -> None:
    """No secret of `data` is in run.json, in a log under the data dir, in any process's command
    line (every process on the machine, so also `pids`' children), or in `texts` (events, errors)."""
    secrets = install_secrets(data)
    places: dict[str, str] = {}
    for path in [data / "run.json", *data.rglob("*.log"), *(data / "logs").glob("*")]:
        if path.is_file():
            places[str(path)] = path.read_text(errors="replace")
    places.update({f"/proc/{pid}/cmdline": line for pid, line in _command_lines().items()})
    for i, text in enumerate(texts):
        places[f"text #{i}"] = text
    unseen = [pid for pid in pids if f"/proc/{pid}/cmdline" not in places]
    assert not unseen, f"processes {unseen} are not running, so their command lines were not checked"
    leaks = [
        (name, where) for name, value in secrets.items() for where, text in places.items() if value in text
    ]
    assert not leaks, f"secrets leaked: {leaks}"
