"""Graders of Assignment 2, "An ablation of your own" (``book/assignments/a2_ablation.ipynb``).

The notebook and the autograder (``book/assignments/test_assignment2.py``) call the same functions.

- :func:`row_factors`, :func:`row_differences` -- what distinguishes rows of Table 3.
- :func:`grade_ablation_choice` -- do the chosen rows isolate one factor?
- :func:`grade_ablation_result` -- does a :func:`~antiforge_lib.ablation.run_ablation` result hold the chosen rows
  and metrics?
- :func:`grade_writeup` -- are the write-up sections of the saved notebook answered?
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from ._common import _verdict

__all__ = [
    "FACTORS",
    "row_factors",
    "row_differences",
    "grade_ablation_choice",
    "grade_ablation_result",
    "WRITEUP_SECTIONS",
    "ANSWER_PLACEHOLDER",
    "grade_writeup",
]


# ---------------------------------------------------------------------------------------------------------------
# Assignment 2: choosing the rows


#: The factors in which rows of Table 3 can differ, in the order they are reported.
FACTORS = ("network", "loss", "attention", "transfer", "gan", "image quality", "HQ training data")
_HQ_DATA = {"c23,c40": "c23", "c0,c40": "c0", "both": "c0 and c23"}


def _row(row):
    from ..ablation import TABLE3, AblationRow

    if isinstance(row, AblationRow):
        return row
    try:
        return TABLE3[int(row)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{row!r} is not a row of Table 3; rows are numbered 1 to 11") from None


def row_factors(row) -> dict:
    """What a row of Table 3 (a number 1..11 or an :class:`~antiforge_lib.ablation.AblationRow`) is made of.

    Keys :data:`FACTORS`: ``network`` ("single"/"two-branch"), ``loss`` ("ce"/"metric"), ``attention``,
    ``transfer``, ``gan`` (bool), ``image quality`` (the compression of the images the detector is trained and
    tested on: "c40", or "c23" for row 4) and ``HQ training data`` (the partner images of a two-branch row:
    "c23", "c0" or "c0 and c23"; None for a single network).
    """
    r = _row(row)
    return {
        "network": r.network,
        "loss": r.loss,
        "attention": r.attention,
        "transfer": r.transfer,
        "gan": r.gan,
        "image quality": r.test_data,
        "HQ training data": _HQ_DATA.get(r.train_data) if r.network == "two-branch" else None,
    }


def row_differences(a, b) -> list[str]:
    """The factors (see :func:`row_factors`) in which rows ``a`` and ``b`` differ.

    Between a single and a two-branch network the HQ training data are part of the network change (only the
    two-branch network has an HQ input), so they are not counted separately.
    """
    fa, fb = row_factors(a), row_factors(b)
    diff = [k for k in FACTORS if fa[k] != fb[k]]
    if "network" in diff:
        diff.remove("HQ training data")
    return diff


def _describe(diff: list[str]) -> str:
    return ", ".join(diff) if diff else "nothing"


def grade_ablation_choice(rows: Iterable) -> bool:
    """Do the chosen rows of Table 3 make an ablation, i.e. isolate single factors?

    Passes when there are at least two distinct rows and every row differs from some other chosen row in exactly
    one factor (:func:`row_differences`): then a change in the numbers between the two can be put down to that
    factor (or to noise), and to nothing else.
    """
    try:
        chosen = list(dict.fromkeys(_row(r).number for r in rows))
    except (TypeError, ValueError) as e:
        return _verdict(False, f"choose rows of Table 3 by their numbers, e.g. [7, 8] ({e}).")
    if len(chosen) < 2:
        return _verdict(False, f"an ablation compares at least two rows; you chose {chosen}.")
    pairs = []
    for n in chosen:
        partners = [m for m in chosen if m != n and len(row_differences(n, m)) == 1]
        if not partners:
            others = ", ".join(f"{m} ({_describe(row_differences(n, m))})" for m in chosen if m != n)
            from ..ablation import TABLE3

            single = [f"{m} ({row_differences(n, m)[0]})" for m in TABLE3 if len(row_differences(n, m)) == 1]
            return _verdict(
                False,
                f"row {n} differs from the other chosen rows in more than one factor -- {others} -- so a difference "
                "in the numbers could not be put down to one of them. Rows that differ from row "
                f"{n} in one factor: {', '.join(single)}.",
            )
        pairs += [(min(n, m), max(n, m)) for m in partners]
    pairs = sorted(set(pairs))
    said = "; ".join(f"{a} vs {b}: {row_differences(a, b)[0]}" for a, b in pairs)
    return _verdict(True, f"rows {chosen} isolate one factor per comparison ({said}).")


# ---------------------------------------------------------------------------------------------------------------
# Assignment 2: the results


def grade_ablation_result(df, rows: Iterable, metrics: Iterable[str]) -> bool:
    """Does ``df`` (from :func:`~antiforge_lib.ablation.run_ablation` or ``load_ablation``) hold the chosen rows
    with a value for every chosen metric?

    Checks: ``df`` is the summary frame (two-level columns, not :func:`format_ablation`'s strings); every chosen
    row is in its index; each metric is one of :data:`antiforge_lib.ablation.METRICS` and has a mean in [0, 100]
    (percent) for each row -- PBCA only exists for rows with attention. Rows beyond the chosen ones are ignored.
    """
    import pandas as pd

    from ..ablation import METRICS

    try:
        chosen = list(dict.fromkeys(_row(r).number for r in rows))
    except (TypeError, ValueError) as e:
        return _verdict(False, f"rows must be row numbers of Table 3 ({e}).")
    metrics = list(dict.fromkeys([metrics] if isinstance(metrics, str) else metrics))
    if not isinstance(df, pd.DataFrame):
        return _verdict(
            False, f"pass the DataFrame returned by run_ablation (or load_ablation), not {type(df).__name__}."
        )
    if not isinstance(df.columns, pd.MultiIndex) or ("row", "label") not in df.columns:
        return _verdict(
            False,
            "this is not run_ablation's summary (two-level columns such as ('AUC', 'mean')); pass the DataFrame "
            "that run_ablation or load_ablation returned, not format_ablation's table of strings.",
        )
    if not metrics:
        return _verdict(False, f"choose at least one metric from {list(METRICS)}.")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        return _verdict(False, f"unknown metric(s) {unknown}; choose from {list(METRICS)}.")
    missing = [n for n in chosen if n not in df.index]
    if missing:
        return _verdict(
            False,
            f"row(s) {missing} are not in the results (found rows {list(df.index)}). Did run_ablation skip them? "
            "Rows 10 and 11 need the (c0,c40) pair cache; see the warnings of the run.",
        )
    for n in chosen:
        for m in metrics:
            if (m, "mean") not in df.columns:
                return _verdict(False, f"the results have no column ({m!r}, 'mean').")
            v = df.loc[n, (m, "mean")]
            if pd.isna(v):
                why = " Row {n} has no attention map, so PBCA does not exist for it." if m == "PBCA" else ""
                return _verdict(False, f"row {n} has no value for {m}.{why.format(n=n)} Drop the metric or the row.")
            if not 0 <= float(v) <= 100:
                return _verdict(False, f"row {n}, {m} = {v}: metrics are percentages in [0, 100].")
    seeds = sorted({int(s) for s in df.loc[chosen, ("row", "n_seeds")]})
    seeds_txt = "/".join(map(str, seeds)) + (" seed" if seeds == [1] else " seeds")
    return _verdict(True, f"results for rows {chosen} with {', '.join(metrics)} are complete ({seeds_txt} per row).")


# ---------------------------------------------------------------------------------------------------------------
# Assignment 2: the write-up

#: The write-up sections of ``a2_ablation.ipynb``: heading -> minimum number of words in the answer.
WRITEUP_SECTIONS = {
    "W1. Hypothesis": 15,
    "W2. Which rows isolate it": 15,
    "W3. Result": 10,
    "W4. Reasoning": 40,
}
#: The line a student replaces with an answer.
ANSWER_PLACEHOLDER = "*(Your answer here.)*"


def _cells(path: Path) -> list[dict]:
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for c in nb.get("cells", []):
        src = c.get("source", "")
        out.append({"type": c.get("cell_type"), "source": "".join(src) if isinstance(src, list) else src})
    return out


def _answer_words(text: str) -> int:
    """Words of a section's answer: without the heading, the prompts (``>`` lines) and the placeholder."""
    keep = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#") or s.startswith(">"):
            continue
        keep.append(s.replace(ANSWER_PLACEHOLDER, ""))
    return len(re.findall(r"[A-Za-z0-9][\w.%+-]*", " ".join(keep)))


def grade_writeup(path: str | Path) -> bool:
    """Are the write-up sections (:data:`WRITEUP_SECTIONS`) of the SAVED notebook ``path`` answered?

    A section is the markdown cell whose first line is its heading (``### W1. Hypothesis`` ...) plus any markdown
    cells after it up to the next code cell or the next cell that starts with a heading. It counts as answered when
    its text, without the heading, the prompts (lines starting with ``>``) and the placeholder, has at least the
    section's minimum number of words. This checks only that the write-up is there; a person grades its reasoning.
    """
    path = Path(path)
    try:
        cells = _cells(path)
    except (OSError, ValueError) as e:
        return _verdict(False, f"cannot read the notebook {path}: {e}")
    heads = {}
    for i, c in enumerate(cells):
        first = c["source"].strip().splitlines()[0] if c["source"].strip() else ""
        for title in WRITEUP_SECTIONS:
            if c["type"] == "markdown" and first.lstrip("#").strip().startswith(title):
                heads[title] = i
    missing = [t for t in WRITEUP_SECTIONS if t not in heads]
    if missing:
        return _verdict(False, f"the sections {missing} are missing from {path.name}: keep their heading lines.")
    starts = sorted(heads.values())
    short = []
    for title, minimum in WRITEUP_SECTIONS.items():
        i = heads[title]
        text = [cells[i]["source"]]
        for j in range(i + 1, len(cells)):
            if cells[j]["type"] != "markdown" or j in starts or cells[j]["source"].lstrip().startswith("#"):
                break
            text.append(cells[j]["source"])
        words = _answer_words("\n".join(text))
        if words < minimum:
            short.append(f"{title} ({words} of at least {minimum} words)")
    if short:
        return _verdict(
            False, f"not answered yet in the saved {path.name}: {'; '.join(short)}. Save the notebook after writing."
        )
    return _verdict(True, f"all {len(WRITEUP_SECTIONS)} write-up sections of {path.name} are answered.")
