"""Autograder for Assignment 2 (a2_ablation.ipynb): the student's choice, results and write-up.

The student's folder holds ``student_ablation.py``, the results folder it names (``OUT_DIR``, one
``row{NN}_seed{S}.json`` per run) and the notebook ``a2_ablation.ipynb`` with the write-up. Run from the repository
root::

    pytest book/assignments/test_assignment2.py -rA                                  # the files next to this one
    STUDENT_DIR=path/to/submission pytest book/assignments/test_assignment2.py -rA   # a student's folder

``STUDENT_NOTEBOOK`` names the notebook if it was renamed. Each test is one graded item; the reasoning of the
write-up is graded by a person. Not collected by the repository's own test run (its ``testpaths`` is ``tests``).
"""

import os
from pathlib import Path

import pytest

from antiforge_lib.ablation import load_ablation
from antiforge_lib.exercises.a2_ablation import grade_ablation_choice, grade_ablation_result, grade_writeup
from antiforge_lib.exercises.grader import load_student_module

FILE = "student_ablation.py"


def _student_dir() -> Path:
    return Path(os.environ.get("STUDENT_DIR") or Path(__file__).parent)


@pytest.fixture(scope="module")
def choice():
    path = _student_dir() / FILE
    if not path.is_file():
        pytest.fail(
            f"{path} not found: run the %%writefile cell of a2_ablation.ipynb, or set STUDENT_DIR to the folder that "
            f"holds the student's {FILE}",
            pytrace=False,
        )
    module = load_student_module(path)
    missing = [k for k in ("ROWS", "METRICS", "OUT_DIR") if not hasattr(module, k)]
    if missing:
        pytest.fail(f"{FILE} does not set {missing}; keep the template's names", pytrace=False)
    return module


def test_rows_isolate_one_factor(choice, capsys):
    ok = grade_ablation_choice(choice.ROWS)
    assert ok, capsys.readouterr().out.strip()


def test_results_hold_every_row_and_metric(choice, capsys):
    out_dir = _student_dir() / choice.OUT_DIR
    try:
        df = load_ablation(out_dir)
    except FileNotFoundError as e:
        pytest.fail(f"{e} (hand in the results folder {choice.OUT_DIR!r} with {FILE})", pytrace=False)
    ok = grade_ablation_result(df, choice.ROWS, choice.METRICS)
    assert ok, capsys.readouterr().out.strip()


def test_writeup_is_answered(capsys):
    notebook = _student_dir() / os.environ.get("STUDENT_NOTEBOOK", "a2_ablation.ipynb")
    ok = grade_writeup(notebook)
    assert ok, capsys.readouterr().out.strip()
