"""Did a change that alters behaviour come with documentation? (DOCS stage's floor.)"""

from __future__ import annotations

import fnmatch
import posixpath

DOC_PATTERNS = ("*.md", "*.rst", "*.adoc", "CHANGELOG*", "README*", "openapi.*", "*.openapi.*")
DOC_DIRS = {"docs", "doc"}
# Not behaviour: tests, the runner's files, metadata.
NEUTRAL_DIRS = {"tests", "test", ".workflow", ".github"}
NEUTRAL_PATTERNS = (".gitignore", "*.lock", "LICENSE*")
CODE_EXTENSIONS = {
    ".py", ".js", ".ts", ".tsx", ".jsx", ".mjs", ".cjs", ".go", ".rs", ".java", ".kt", ".rb", ".php",
    ".c", ".h", ".cc", ".cpp", ".cs", ".swift", ".sh", ".sql", ".html", ".css", ".vue", ".svelte",
    ".toml", ".yaml", ".yml", ".json", ".cfg", ".ini",
}  # fmt: skip


def is_doc(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    return bool(DOC_DIRS.intersection(parts[:-1])) or any(fnmatch.fnmatch(name, p) for p in DOC_PATTERNS)


def is_code(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    if is_doc(path) or NEUTRAL_DIRS.intersection(parts[:-1]) or name.startswith("test_"):
        return False
    if any(fnmatch.fnmatch(name, p) for p in NEUTRAL_PATTERNS):
        return False
    return posixpath.splitext(name)[1].lower() in CODE_EXTENSIONS


def missing_docs(paths: list[str]) -> str | None:
    """Why the change needs docs it does not have, or None."""
    code = [p for p in paths if is_code(p)]
    if not code or any(is_doc(p) for p in paths):
        return None
    shown = ", ".join(code[:10]) + (f" and {len(code) - 10} more" if len(code) > 10 else "")
    return (
        f"the change alters behaviour ({shown}) but no documentation changed: update the README, the API "
        "docs or the CHANGELOG for it"
    )
