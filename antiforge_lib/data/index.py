"""The index of a pair cache (``index.csv``): its columns and its reader.

Kept apart from :mod:`antiforge_lib.data.pairs` (PyAV, dlib) and :mod:`antiforge_lib.data.loaders` (torch) so that
reading a finished cache imports neither, and ``prepare_pairs``' worker processes start without importing torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

__all__ = ["INDEX_COLUMNS", "MASK_THRESHOLD", "load_index"]

#: A mask pixel counts as manipulated when its grey level / 255 exceeds this (the paper's 0.1, Sec. 4.2).
MASK_THRESHOLD = 0.1

INDEX_COLUMNS = ["split", "method", "video", "frame", "label", "hq", "lq", "mask", "x0", "y0", "x1", "y1"]


def _resolve(df: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    df = df.copy()
    for key in ("hq", "lq", "mask"):
        df[key] = [str(out_dir / p) for p in df[key]]
    return df


def load_index(out_dir) -> pd.DataFrame:
    """Read a finished pair cache's ``index.csv``.

    Returns a DataFrame, one row per HQ/LQ pair, columns :data:`INDEX_COLUMNS` (``hq``, ``lq``, ``mask`` as
    absolute paths; box corners in pixels of the source frame); ``attrs["report"]`` holds ``report.json``.
    Raises FileNotFoundError (no index there) or ValueError (columns missing), naming the file.
    """
    out_dir = Path(out_dir)
    path = out_dir / "index.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no pair index here; run prepare_pairs(..., out_dir={str(out_dir)!r}) first")
    rebuild = "rerun prepare (prepare_pairs) with the same arguments to rebuild it"
    try:
        df = pd.read_csv(path, dtype={"video": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable pair index ({' '.join(str(e).split())}); {rebuild}") from None
    lacking = [c for c in INDEX_COLUMNS if c not in df.columns]
    if lacking:
        raise ValueError(f"{path}: columns {lacking} are missing; rebuild the cache")
    incomplete = df.index[df[INDEX_COLUMNS].isna().any(axis=1)]
    if len(incomplete):
        raise ValueError(
            f"{path}: {len(incomplete)} row(s) are incomplete, the first on line {incomplete[0] + 2} (a file cut "
            f"short?); {rebuild}"
        )
    out = _resolve(df, out_dir)
    report = out_dir / "report.json"
    out.attrs["report"] = json.loads(report.read_text()) if report.is_file() else {}
    return out
