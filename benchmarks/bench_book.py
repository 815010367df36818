"""Book build time: execute every chapter notebook of book/_toc.yml on this machine, one kernel each, timed.

Run:  make bench-book   or   .venv/bin/python benchmarks/bench_book.py [--only 01_compression] [--json out.json]

This is the execution part of ``make book`` (which runs each chapter with nbclient through myst-nb, one fresh
``python3`` kernel per notebook, in the notebook's folder, with ``PLOTLY_RENDERER=notebook``); rendering the
HTML with Sphinx comes on top (tens of seconds). Outputs are not written back. Goal: total <= 20 min on the
project's 2-core CPU machine; the ratio column is total / 20 min. Slow (the whole book): opt-in, not in
``make bench``.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime
from pathlib import Path

import yaml
from provenance import write_results

BOOK = Path(__file__).resolve().parent.parent / "book"
BUDGET_S = 20 * 60
TIMEOUT_S = 1200  # per cell, as _config.yml's execute.timeout


def toc_files(toc: Path) -> list[str]:
    """Every ``file`` entry of a Jupyter Book ``_toc.yml`` (root, parts, chapters, sections), in order."""
    data = yaml.safe_load(toc.read_text())
    out = [data["root"]] if "root" in data else []

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                out.append(e["file"])
            for key in ("chapters", "sections", "parts"):
                walk(e.get(key))

    for key in ("chapters", "parts"):
        walk(data.get(key))
    return out


def _cell_seconds(cell) -> float | None:
    t = cell.get("metadata", {}).get("execution", {})
    start, end = t.get("iopub.execute_input"), t.get("shell.execute_reply")
    if not (start and end):
        return None
    return (
        datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(start.replace("Z", "+00:00"))
    ).total_seconds()


def run_notebook(path: Path) -> dict:
    """Execute one notebook in a fresh python3 kernel; wall seconds (kernel start included) and slowest cells."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
    cells = [(i, _cell_seconds(c)) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    slowest = sorted(((s, i) for i, s in cells if s is not None), reverse=True)[:3]
    return {"seconds": seconds, "code_cells": len(cells), "slowest_cells": [{"cell": i, "s": s} for s, i in slowest]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the results (with provenance) to this JSON file")
    ap.add_argument("--only", action="append", help="run only this chapter (name without .ipynb); repeatable")
    args = ap.parse_args()
    os.environ.setdefault("PLOTLY_RENDERER", "notebook")  # as `make book`; the kernels inherit it

    chapters = [f for f in toc_files(BOOK / "_toc.yml") if (BOOK / f"{f}.ipynb").is_file()]
    skipped = [f for f in toc_files(BOOK / "_toc.yml") if f not in chapters]
    if args.only:
        unknown = set(args.only) - set(chapters)
        if unknown:
            raise SystemExit(f"not a chapter notebook of book/_toc.yml: {sorted(unknown)}; chapters: {chapters}")
        chapters = [c for c in chapters if c in args.only]
    complete = not args.only

    rows = []
    print(f"{'chapter':<28} {'seconds':>9}  slowest code cells (index: s)")
    for name in chapters:
        r = run_notebook(BOOK / f"{name}.ipynb")
        cells = ", ".join(f"{c['cell']}: {c['s']:.1f}" for c in r["slowest_cells"])
        print(f"{name:<28} {r['seconds']:9.1f}  {cells}", flush=True)
        rows.append(
            {
                "id": f"book/{name}",
                "case": f"execute book/{name}.ipynb with nbclient, fresh python3 kernel (start included)",
                "a_label": "seconds",
                "a": r["seconds"],
                "unit": "s",
                "ratio": None,
                "goal": None,
                "met": None,
                **r,
            }
        )
    total = sum(r["a"] for r in rows)
    rows.append(
        {
            "id": "book/total",
            "case": f"sum over {'all' if complete else 'the selected'} {len(rows)} chapter notebooks of _toc.yml "
            f"(not executed, no code: {skipped}); ratio = total / {BUDGET_S // 60} min",
            "a_label": "seconds",
            "a": total,
            "unit": "s",
            "ratio": total / BUDGET_S,
            "goal": "<= 1" if complete else None,
            "met": (total <= BUDGET_S) if complete else None,
            "complete": complete,
        }
    )
    status = ("within" if total <= BUDGET_S else "OVER") + f" the {BUDGET_S // 60}-min budget"
    print(f"{'total':<28} {total:9.1f}  {status if complete else '(partial run: no verdict)'}")
    if args.json:
        write_results(args.json, rows)


if __name__ == "__main__":
    main()
