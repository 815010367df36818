"""Provenance for results files: what produced a number (command, commit, torch, device, date).

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
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

__all__ = [
    "git_commit",
    "device_name",
    "provenance",
    "atomic_write",
    "write_json",
    "json_safe",
    "read_json",
    "exclusive_lock",
    "FolderBusy",
]

_REPO = Path(__file__).resolve().parent.parent


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """``git rev-parse HEAD`` of the checkout holding the library (``""`` outside a git checkout).

    A ``+dirty`` suffix marks uncommitted changes, so a result is never attributed to a commit that did not
    produce it. A copy of the tree without ``.git`` (say, shipped to a rented GPU box) reports
    ``$ANTIFORGE_COMMIT + " (from $ANTIFORGE_COMMIT)"`` when that variable is set, else ``""``.
    """
    cwd = str(cwd or _REPO)
    declared = os.environ.get("ANTIFORGE_COMMIT")
    fallback = f"{declared} (from $ANTIFORGE_COMMIT)" if declared else ""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return fallback
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return fallback


def device_name(device=None) -> str:
    """Human-readable device: the GPU's name on CUDA, else the CPU architecture and core count."""
    import torch  # lazily: prepare_pairs' worker processes import this module and need no torch

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.machine()} {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def provenance(command: str | None = None, device=None) -> dict:
    """``{command, commit, torch, device, python, date}``; ``command`` defaults to this process's argv."""
    import torch

    return {
        "command": command if command is not None else " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": git_commit(),
        "torch": torch.__version__,
        "device": device_name(device),
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


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
