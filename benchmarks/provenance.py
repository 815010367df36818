"""Write a benchmark's results as JSON, atomically, with what produced them."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone

import torch


def write_results(path: str, rows: list[dict]) -> None:
    """``{"results": rows, "provenance": {command, commit, machine, torch, threads, date}}`` -> ``path``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    out = {
        "results": rows,
        "provenance": {
            "command": " ".join(["python", *sys.argv]),
            "commit": commit,
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=2)
    os.replace(tmp, path)
