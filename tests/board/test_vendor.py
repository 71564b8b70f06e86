"""The board's JavaScript is vendored at pinned versions with a recorded hash of each file
(ui/vendor.py): the committed files match their hashes, every file is listed, and a changed byte is
caught."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

UI = Path(__file__).resolve().parents[2] / "ui"


def vendor_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ui_vendor", UI / "vendor.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_files_match_their_pinned_hashes() -> None:
    done = subprocess.run([sys.executable, str(UI / "vendor.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    vendor = vendor_module()
    listed = [line.split("  ") for line in vendor.SUMS.read_text(encoding="utf-8").splitlines()]
    pins = {name: f"{package}@{version}" for package, version, _, name in vendor.PACKAGES}
    assert {name: pinned for _, name, pinned in listed} == pins  # each file, at its pinned version
    on_disk = {p.name for p in vendor.VENDOR.iterdir() if p.name != "SHA256SUMS"}
    assert on_disk == set(pins)  # nothing vendored without a hash


def test_a_changed_file_fails_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vendor = vendor_module()
    copy = tmp_path / "vendor"
    shutil.copytree(vendor.VENDOR, copy)
    (copy / "htmx.min.js").write_bytes((copy / "htmx.min.js").read_bytes() + b"\n// changed")
    monkeypatch.setattr(vendor, "VENDOR", copy)
    monkeypatch.setattr(vendor, "SUMS", copy / "SHA256SUMS")
    assert vendor.check() == 1
