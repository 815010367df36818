"""Run every benchmark, print one summary table and write benchmarks/results/bench.json.

Run:  make bench   (= .venv/bin/python benchmarks/run_all.py)
      .venv/bin/python benchmarks/run_all.py --quick        # small sizes, few repetitions: checks that it runs
      .venv/bin/python benchmarks/run_all.py --book         # also time the book (slow; or: make bench-book)

Each script runs in its own process (so one's memory and threads do not colour the next) and prints its own
table; its rows are gathered here, tagged with the script, into one JSON file with provenance.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import print_table
from provenance import write_results

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_train.py", "bench_data.py", "bench_loader299.py", "bench_jpeg.py"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=str(HERE / "results" / "bench.json"), help="combined results file")
    ap.add_argument("--quick", action="store_true", help="pass --quick to every script")
    ap.add_argument("--threads", type=int, help="pass --threads to every script (1 helps on a busy machine)")
    ap.add_argument("--book", action="store_true", help="also run bench_book.py (executes the whole book)")
    ap.add_argument("--only", action="append", choices=[*SCRIPTS, "bench_book.py"], help="run only these")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)  # so that the combined provenance says so too
    scripts = args.only or SCRIPTS + (["bench_book.py"] if args.book else [])
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for script in scripts:
            out = Path(tmp) / f"{script}.json"
            cmd = [sys.executable, str(HERE / script), "--json", str(out)]
            if script != "bench_book.py":
                cmd += ["--quick"] * args.quick + (["--threads", str(args.threads)] if args.threads else [])
            print(f"\n### {' '.join([Path(sys.executable).name, *cmd[1:2], *cmd[4:]])}", flush=True)
            t0 = time.perf_counter()
            if subprocess.run(cmd, cwd=HERE.parent, check=False).returncode != 0 or not out.is_file():
                failed.append(script)
                continue
            print(f"({script}: {time.perf_counter() - t0:.0f} s)", flush=True)
            data = json.loads(out.read_text())
            threads = data["provenance"].get("torch_threads")
            rows += [{"script": script, "torch_threads": threads, **r} for r in data["results"]]

    print_table(rows, "summary" + (" (QUICK: small sizes, few repetitions; not for reporting)" if args.quick else ""))
    write_results(args.json, rows)
    print(f"\nwrote {args.json}")
    if failed:
        sys.exit(f"failed: {failed}")


if __name__ == "__main__":
    main()
