"""Autograder for Assignment 1 (a1_losses.ipynb): the student's ``student_losses.py``.

Run from the repository root::

    pytest book/assignments/test_assignment1.py -rA                                  # the file next to this one
    STUDENT_DIR=path/to/submission pytest book/assignments/test_assignment1.py -rA   # a student's folder

Each test is one graded item (``--junitxml=grades.xml`` writes them for a gradebook). The two graders are the ones
the notebook runs, so a student who sees "Correct" there passes here. Not collected by the repository's own test
run (its ``testpaths`` is ``tests``).
"""

import ast
import os
from pathlib import Path

import pytest

from antiforge_lib.exercises.a1_losses import grade_attention_transfer_loss, grade_metric_loss
from antiforge_lib.exercises.grader import load_student_module

FILE = "student_losses.py"


def _student_file() -> Path:
    return Path(os.environ.get("STUDENT_DIR") or Path(__file__).parent) / FILE


@pytest.fixture(scope="module")
def student():
    path = _student_file()
    if not path.is_file():
        pytest.fail(
            f"{path} not found: run the %%writefile cell of a1_losses.ipynb, or set STUDENT_DIR to the folder that "
            f"holds the student's {FILE}",
            pytrace=False,
        )
    return load_student_module(path)


def _function(student, name):
    fn = getattr(student, name, None)
    if not callable(fn):
        pytest.fail(f"{FILE} defines no function {name}(...); keep the template's names", pytrace=False)
    return fn


def test_metric_loss(student, capsys):
    ok = grade_metric_loss(_function(student, "metric_loss"))
    assert ok, capsys.readouterr().out.strip()


def test_attention_transfer_loss(student, capsys):
    ok = grade_attention_transfer_loss(_function(student, "attention_transfer_loss"))
    assert ok, capsys.readouterr().out.strip()


def test_does_not_use_the_library_losses(student):
    """Only torch -- not the reference implementation it is graded against. (Older templates imported their
    placeholder, ``not_implemented``, from ``antiforge_lib.exercises.assignments``: still allowed.)"""
    tree = ast.parse(_student_file().read_text(encoding="utf-8"))
    allowed = "antiforge_lib.exercises.assignments"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        bad = [n for n in names if n.startswith("antiforge_lib") and n != allowed]
        assert not bad, f"{FILE} line {node.lineno} imports {bad[0]}: write the losses with torch, not the library"
