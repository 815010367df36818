"""The library's file plumbing: one atomic write, strict JSON in and out, and a lock on a folder.

Every results JSON the library writes (CLI runs, ablations, benchmarks) goes through :func:`write_json`, which
writes atomically (temp file + ``os.replace``), so a killed run never leaves half a file behind.
:func:`exclusive_lock` gives one process a folder: builders of one cache take turns, and two runs never train
into the same run folder.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["atomic_write", "write_json", "json_safe", "read_json", "exclusive_lock", "FolderBusy"]


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it over ``path`` with ``os.replace``, so a
    writer killed half-way leaves the previous file (or none), never half of one. Returns ``path`` as a ``Path``.

    The temporary file is ``<name>.tmp``: a fixed name, so a rerun after a kill overwrites what the killed writer
    left instead of piling up files. One writer per path is the callers' affair (:func:`exclusive_lock` on run and
    cache folders). A ``write`` that raises removes its temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented, strict JSON to ``path`` atomically (:func:`atomic_write`, :func:`json_safe`)."""
    text = json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def json_safe(x):
    """``x`` as strict JSON can hold it, recursively: NaN and infinities become None (null), numpy and torch
    scalars and arrays become Python numbers and lists, paths strings, tuples lists, keys strings."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if hasattr(x, "tolist"):  # numpy / torch scalars and arrays
        return json_safe(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return x


def read_json(path: str | os.PathLike):
    """Read a JSON file; a clear ``ValueError`` naming the file if it is not valid JSON."""
    path = Path(path)
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it to recompute it") from e


class FolderBusy(RuntimeError):
    """Another process holds the lock of a folder this run needs for itself."""


def _holder(lock_path: Path) -> str:
    """Who holds ``lock_path``, from the note its holder left beside it (or "another process")."""
    try:
        note = json.loads(lock_path.with_name(lock_path.name + ".holder").read_text())
        return f"process {note['pid']} on {note['host']} since {note['since']} ({note['command']})"
    except (OSError, ValueError, KeyError):
        return "another process"


@contextmanager
def exclusive_lock(lock_path: str | os.PathLike, wait: bool = True, what: str | None = None):
    """Hold an exclusive lock on ``lock_path`` while in the block (``filelock``: POSIX and Windows).

    The holder leaves a note beside the lock (``<lock>.holder``: process, host, start, command), so that a second
    process can say whom it meets. With ``wait=True`` that process says once, on stderr, whom it waits for, then
    waits; with ``wait=False`` it raises :class:`FolderBusy` at once, naming the holder and ``what`` is locked. The
    operating system releases the lock when its holder dies, even by ``kill -9``.
    """
    from filelock import FileLock, Timeout

    lock_path = Path(lock_path)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = _holder(lock_path)
        if not wait:
            raise FolderBusy(
                f"{what or lock_path.parent} is in use by {holder}; wait for it to finish, or use another folder"
            ) from None
        print(f"waiting for {holder}, which holds {lock_path}", file=sys.stderr, flush=True)
        lock.acquire()
    note = lock_path.with_name(lock_path.name + ".holder")
    try:
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        command = " ".join([Path(sys.executable).name, *sys.argv])
        write_json(note, {"pid": os.getpid(), "host": platform.node(), "since": since, "command": command})
        yield
    finally:
        note.unlink(missing_ok=True)
        lock.release()
