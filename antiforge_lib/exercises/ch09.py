"""Self-checks for Chapter 9, "Ablations: what each piece buys"."""

from __future__ import annotations

import math

from ._common import _call, _verdict

__all__ = ["check_row_delta"]


# -- Chapter 9 ---------------------------------------------------------------------
# (earlier row, later row, metric): a gain, a loss (so |delta| shows), a row pair where iloc's off-by-one bites.
_CASES = [(2, 5, "TAR@0.1%"), (8, 9, "TAR@0.01%"), (1, 2, "AUC"), (3, 4, "ACC"), (5, 8, "AUC")]


def check_row_delta(fn) -> bool:
    """Exercise 9.1: ``fn(paper, a, b, metric)`` returns row ``b`` minus row ``a`` of Table 3, in points.

    ``paper`` is :func:`antiforge_lib.ablation.paper_table` (index "No." = the row numbers 1..11, metrics in
    percent), ``a`` and ``b`` row numbers, ``metric`` a column name such as ``"AUC"``. The answer is the
    difference in percentage points, ``paper.loc[b, metric] - paper.loc[a, metric]`` (positive: row ``b`` is
    better), as a float.
    """
    from ..ablation import paper_table

    paper = paper_table()
    for a, b, metric in _CASES:
        want = float(paper.loc[b, metric] - paper.loc[a, metric])
        got, err = _call(fn, paper.copy(), a, b, metric)
        if err:
            return _verdict(False, err)
        try:
            got = float(got)
        except (TypeError, ValueError):
            return _verdict(False, f"return one number (a float), got {type(got).__name__}.")
        if math.isfinite(got) and abs(got - want) <= 1e-6:
            continue
        va, vb = paper.loc[a, metric], paper.loc[b, metric]
        suspects = {
            "keep the sign: a negative difference says row b scores lower.": abs(want),
            "the sign is reversed: take the later row minus the earlier one (b - a), so a gain is positive.": -want,
            "that is a relative change in percent; the table's numbers are already percentages, so subtract them "
            "to get percentage points.": 100 * (vb - va) / va,
            "paper.iloc counts positions from 0, but the row numbers are the index: use paper.loc[n, metric].": (
                paper.iloc[b][metric] - paper.iloc[a][metric] if max(a, b) < len(paper) else math.nan
            ),
            "that is a fraction; Table 3 is in percent, keep the difference in points.": want / 100,
        }
        hint = next((h for h, v in suspects.items() if math.isfinite(v) and abs(got - v) <= 1e-6), "")
        return _verdict(
            False,
            f"rows {a} -> {b}, {metric}: Table 3 has {va:.2f} and {vb:.2f}, so the change is {want:+.2f} points; "
            f"you gave {got:+.4f}. " + (hint or "Look both rows up by their number and subtract."),
        )
    return _verdict(True, "your differences match Table 3, in percentage points, later row minus earlier.")
