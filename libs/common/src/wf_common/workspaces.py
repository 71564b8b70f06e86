"""Where a project's workspace may be: the one rule, used by the command models, the API and the CLI.

A workspace is a directory agents write into and run code in, so:
- it is an absolute path, written plainly (no `.` or `..` segments, no `//`): a relative one would be
  resolved against whatever directory a server happens to run in;
- it is not `/`, not a directory everybody's files live in (`/home`, `/tmp`, …), and not inside a
  system directory (`/etc`, `/usr`, `/proc`, …);
- it is one line of at most `PATH_MAX` characters, no segment longer than 63 characters.

`WORKSPACE_PATTERN` says all of that (it is the API's JSON Schema for the field), and `workspace_problem`
says which rule a path breaks, in words. What depends on the machine the orchestrator runs on (the
user's home directory, where symbolic links lead, another project already there) is checked by the
orchestrator with `home_problem` and the same `workspace_problem` on the resolved path.
"""

from __future__ import annotations

import posixpath
import re

from wf_common.text import problem

# Never a workspace, nor anything inside them: the operating system's own files.
SYSTEM_TREES = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin",
    "/sys", "/usr",
)  # fmt: skip
# Never a workspace themselves (a directory inside them may be): they hold everybody's files.
SHARED_ROOTS = ("/home", "/root", "/var", "/tmp", "/var/tmp", "/opt", "/srv", "/mnt", "/media")  # noqa: S108 - refused, not used
PATH_MAX = 1024
SEGMENT_MAX = 63


def _alternatives(paths: tuple[str, ...]) -> str:
    return "|".join(re.escape(p.lstrip("/")) for p in paths)


WORKSPACE_PATTERN = (
    "^"
    f"(?!/(?:{_alternatives(SYSTEM_TREES)})(?:/|$))"  # not inside a system directory
    f"(?!(?:/(?:{_alternatives(SHARED_ROOTS)}))?/?$)"  # not / nor a shared root itself
    r"(?!.*/\.{1,2}(?:/|$))(?!.*//)"  # written plainly: no . or .. segment, no //
    f"(?!.*[^/]{{{SEGMENT_MAX + 1}}})"  # no segment longer than SEGMENT_MAX
    r"/[^\x00-\x1f\x7f]*$"  # absolute, one line
)
_WORKSPACE = re.compile(WORKSPACE_PATTERN)


def workspace_problem(path: str) -> str | None:
    """Why `path` cannot be a workspace (the rules of WORKSPACE_PATTERN, in words), or None."""
    wrong = problem(path, line=True, max_length=PATH_MAX)
    if wrong:
        return f"the workspace path {wrong}"
    if not path.startswith("/"):
        return (
            f"the workspace must be an absolute path, got {path!r}: a relative path would land wherever "
            "the server runs (`wf project create` resolves one against your current directory)"
        )
    if path.rstrip("/") == "":
        return (
            "the workspace cannot be / (agents would write over the whole machine); choose a project folder"
        )
    if posixpath.normpath(path) != path.rstrip("/") or "//" in path:
        return f"write the workspace plainly, without '.', '..' or '//' ({posixpath.normpath(path)}?)"
    normal = path.rstrip("/")
    for tree in SYSTEM_TREES:
        if normal == tree or normal.startswith(tree + "/"):
            return f"the workspace {normal} is inside the system directory {tree}; choose a project directory"
    if normal in SHARED_ROOTS:
        return (
            f"the workspace cannot be {normal} itself (it holds everybody's files); use a directory inside it"
        )
    if any(len(segment) > SEGMENT_MAX for segment in normal.split("/")):
        return f"a directory name in the workspace path is longer than {SEGMENT_MAX} characters"
    if not _WORKSPACE.fullmatch(path):  # the pattern and the words above must agree
        return "the workspace path is not allowed"
    return None


def home_problem(path: str, home: str) -> str | None:
    """Why `path` cannot be a workspace for a user whose home directory is `home`, or None."""
    normal, home_dir = posixpath.normpath(path), posixpath.normpath(home)
    if home_dir in ("", "/"):
        return None
    if normal == home_dir:
        return f"the workspace cannot be your home directory; use a folder in it, e.g. {home_dir}/myproject"
    if home_dir.startswith(normal.rstrip("/") + "/"):
        return f"the workspace cannot be {normal}: it holds your home directory ({home_dir})"
    return None
