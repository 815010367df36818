"""Provenance for results files: what produced a number (command, commit, torch, device, date).

Every results JSON the library writes (CLI runs, ablations, benchmarks) goes through :func:`write_json`, which
writes atomically (temp file + ``os.replace``), so a killed run never leaves half a file behind.
:func:`exclusive_lock` serialises builders of one cache folder (two notebooks preparing the same data at once).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["git_commit", "device_name", "provenance", "atomic_write", "write_json", "read_json", "exclusive_lock"]

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
    """Call ``write(tmp)`` on ``path.tmp`` beside ``path``, then move it over ``path`` with ``os.replace``, so a
    writer killed half-way leaves the previous file (or none), never half of one. Returns ``path`` as a ``Path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (:func:`atomic_write`)."""
    text = json.dumps(obj, indent=2, default=_jsonable) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_json(path: str | os.PathLike):
    """Read a JSON file; a clear ``ValueError`` naming the file if it is not valid JSON."""
    path = Path(path)
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it to recompute it") from e


def _jsonable(x):
    """numpy scalars/arrays and paths, which ``json`` cannot write by itself."""
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


@contextmanager
def exclusive_lock(lock_path: str | os.PathLike):
    """Hold an exclusive advisory lock on ``lock_path`` while in the block (POSIX ``flock``; none on Windows).

    A second process asking for the same lock waits until the first leaves the block.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock_path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
