"""Vendor the board's few JavaScript packages into ui/static/vendor/ from the npm registry.

Run by hand when a version changes (`python ui/vendor.py`; needs `npm` on PATH). Nothing runs at
install or run time: the files are committed, and `ui/static/vendor/SHA256SUMS` records each file's
hash so a change is visible in review. `python ui/vendor.py --check` verifies the committed files
against that list (no network).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "static" / "vendor"
SUMS = VENDOR / "SHA256SUMS"

# (package, pinned version, file inside the package tarball, name under ui/static/vendor/)
PACKAGES = (
    ("htmx.org", "2.0.8", "package/dist/htmx.min.js", "htmx.min.js"),
    ("htmx-ext-sse", "2.2.4", "package/dist/sse.js", "htmx-ext-sse.js"),
    ("sortablejs", "1.15.6", "package/modular/sortable.esm.js", "sortable.esm.js"),
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch() -> None:
    VENDOR.mkdir(parents=True, exist_ok=True)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for package, version, member, name in PACKAGES:
            argv = ["npm", "pack", f"{package}@{version}", "--silent", "--pack-destination", tmp]
            # npm from PATH, run by hand by a maintainer; the argv is fixed and the versions pinned.
            out = subprocess.run(argv, capture_output=True, text=True, check=True)  # noqa: S603
            tarball = Path(tmp) / out.stdout.strip().splitlines()[-1]
            with tarfile.open(tarball) as tar:
                extracted = tar.extractfile(member)
                if extracted is None:
                    sys.exit(f"{package}@{version} has no file {member}")
                (VENDOR / name).write_bytes(extracted.read())
            lines.append(f"{sha256(VENDOR / name)}  {name}  {package}@{version}")
    SUMS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(SUMS.read_text(encoding="utf-8"), end="")


def check() -> int:
    bad = 0
    for line in SUMS.read_text(encoding="utf-8").splitlines():
        digest, name, _ = line.split("  ")
        if sha256(VENDOR / name) != digest:
            print(f"{name}: hash differs from SHA256SUMS; re-run ui/vendor.py", file=sys.stderr)
            bad += 1
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the committed files, no network")
    if parser.parse_args().check:
        return check()
    fetch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
