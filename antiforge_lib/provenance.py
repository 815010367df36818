"""Provenance for results files: what produced a number (command, commit, torch, device, date).

The atomic write, the JSON helpers and the folder lock live in :mod:`antiforge_lib._io`; they are re-exported here,
where they used to be, so older imports keep working.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from ._io import FolderBusy, atomic_write, exclusive_lock, json_safe, read_json, write_json

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
