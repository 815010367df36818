"""Write a benchmark's results as JSON, atomically, with what produced them."""

from __future__ import annotations

import torch

from antiforge_lib._io import write_json
from antiforge_lib.provenance import provenance


def write_results(path: str, rows: list[dict]) -> None:
    """``{"results": rows, "provenance": {command, commit, torch, device, python, date, torch_threads}}``."""
    prov = provenance(device="cpu") | {"torch_threads": torch.get_num_threads()}
    write_json(path, {"results": rows, "provenance": prov})
