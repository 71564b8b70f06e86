"""The `wf` command: start Workflow Hub on one machine (`wf start`) and talk to it (everything else)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wf-cli")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
