"""The one way the runner opens a file inside a workspace: an `openat`-style walk from the root.

Each path component is opened relative to the directory opened before it, with `O_NOFOLLOW`, so a
symlink anywhere on the path (the file itself or a parent directory) is refused instead of followed,
and there is no gap between checking a path and using it for a swapped-in symlink to slip through:
what is checked is the open file descriptor itself. A file opened for writing must have one link
(`st_nlink == 1`), so a hard link to a file outside the workspace cannot be written through; it is
truncated only after that check. Paths are relative, lexically clean (no `..`), and `.git` at any
depth is refused where the caller says so (agents; the runner's own git operations use git).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
from collections.abc import Iterator
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ConfinementError(Exception):
    """The path would leave the workspace or touch something off limits; the message says which."""


def split_relative(path: str, *, allow_git: bool = False) -> list[str]:
    """The path's components, or ConfinementError if it is absolute, has `..`, a NUL, or `.git`."""
    if "\x00" in path:
        raise ConfinementError("path contains a NUL byte")
    cleaned = path.strip().replace("\\", "/") if os.sep == "\\" else path.strip()
    if cleaned.startswith(("/", "~")):
        raise ConfinementError(
            f"{path!r} is an absolute path; use a path relative to the workspace root, e.g. 'src/app.py'"
        )
    # Lexical: "a/../b" is "b". The walk below never follows a symlink, so this is what gets opened.
    normal = posixpath.normpath(cleaned or ".")
    if normal == ".." or normal.startswith("../"):
        raise ConfinementError(
            f"{path!r} resolves outside the workspace (via '..'); only files inside the workspace can be used"
        )
    parts = [p for p in normal.split("/") if p not in ("", ".")]
    if not allow_git and any(p.lower() == ".git" for p in parts):
        # Writes could rewrite history or plant hooks; reads could leak credentials in remote URLs.
        # lower(): ".GIT" is the same directory on case-insensitive file systems.
        raise ConfinementError(f"{path!r} is inside .git/ (at any depth); agents cannot use git internals")
    return parts


def _symlink_error(path: str) -> ConfinementError:
    return ConfinementError(
        f"{path!r} goes through a symbolic link, which could lead outside the workspace; symlinks are "
        "not followed (use the real path)"
    )


def open_root(root: str | Path) -> int:
    """A directory fd of the (trusted, configured) workspace root."""
    return os.open(os.path.realpath(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _walk_dirs(root_fd: int, parts: list[str], path: str, *, create: bool) -> int:
    """The fd of the directory holding the last component (the caller closes it)."""
    fd = os.dup(root_fd)
    try:
        for name in parts[:-1]:
            try:
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=fd)
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR) and _is_symlink(fd, name):
                    raise _symlink_error(path) from None
                raise
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_symlink(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def open_file(
    root_fd: int,
    path: str,
    *,
    write: bool = False,
    append: bool = False,
    create_dirs: bool = False,
    allow_git: bool = False,
    mode: int = 0o644,
) -> int:
    """An fd of a regular file under the root. Writes create the file (and, with create_dirs, its
    parents); they truncate it unless `append`. Reads of a missing file raise FileNotFoundError."""
    parts = split_relative(path, allow_git=allow_git)
    if not parts:
        raise ConfinementError("the workspace root itself is a directory, not a file; give a file path")
    dir_fd = _walk_dirs(root_fd, parts, path, create=create_dirs)
    name = parts[-1]
    # O_NONBLOCK: a FIFO planted in the workspace must not hang the runner; regular files ignore it.
    flags = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    if write:
        flags |= os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0)  # no O_TRUNC before the check
    else:
        flags |= os.O_RDONLY
    try:
        fd = os.open(name, flags, mode, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.EMLINK) or _is_symlink(dir_fd, name):
            raise _symlink_error(path) from None
        if err.errno == errno.ENXIO:
            raise ConfinementError(f"{path!r} is not a regular file") from None
        raise
    finally:
        os.close(dir_fd)
    try:
        _check_opened(fd, path, write=write)
        os.set_blocking(fd, True)
        if write and not append:
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_opened(fd: int, path: str, *, write: bool) -> None:
    """What was opened (not what the path named a moment ago) must be a regular, singly linked file."""
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", path)
    if not stat.S_ISREG(st.st_mode):
        raise ConfinementError(f"{path!r} is not a regular file (a device, socket or pipe)")
    if write and st.st_nlink > 1:
        raise ConfinementError(
            f"{path!r} is a hard link ({st.st_nlink} names for one file); it cannot be written, "
            "since the other name may lie outside the workspace"
        )


def open_dir(root_fd: int, path: str, *, allow_git: bool = False) -> int:
    """An fd of a directory under the root (the root itself for '.')."""
    parts = split_relative(path, allow_git=allow_git)
    if not parts:
        return os.dup(root_fd)
    parent = _walk_dirs(root_fd, parts, path, create=False)
    try:
        return os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR) and _is_symlink(parent, parts[-1]):
            raise _symlink_error(path) from None
        raise
    finally:
        os.close(parent)


def kind(root_fd: int, path: str) -> str:
    """'file', 'dir', 'missing' or 'other' for a path under the root; ConfinementError for a symlink."""
    parts = split_relative(path, allow_git=True)
    if not parts:
        return "dir"
    try:
        parent = _walk_dirs(root_fd, parts, path, create=False)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    try:
        st = os.lstat(parts[-1], dir_fd=parent)
    except FileNotFoundError:
        return "missing"
    finally:
        os.close(parent)
    if stat.S_ISLNK(st.st_mode):
        raise _symlink_error(path)
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "other"


def read_bytes(root_fd: int, path: str, limit: int, *, allow_git: bool = False) -> tuple[bytes, int]:
    """Up to `limit` bytes of the file and its full size."""
    fd = open_file(root_fd, path, allow_git=allow_git)
    with os.fdopen(fd, "rb") as f:
        return f.read(limit), os.fstat(f.fileno()).st_size


def write_bytes(
    root_fd: int,
    path: str,
    data: bytes,
    *,
    append: bool = False,
    create_dirs: bool = True,
    allow_git: bool = False,
) -> None:
    fd = open_file(root_fd, path, write=True, append=append, create_dirs=create_dirs, allow_git=allow_git)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@contextlib.contextmanager
def rooted(root: str | Path) -> Iterator[int]:
    fd = open_root(root)
    try:
        yield fd
    finally:
        os.close(fd)


def write_under(root: str | Path, path: str, data: bytes, *, append: bool = False) -> None:
    """The runner's own writes into a workspace (tasks.json, transcripts), confined like an agent's."""
    with rooted(root) as fd:
        write_bytes(fd, path, data, append=append)
