"""The grading machinery shared by the classroom assignments' graders (:mod:`.a1_losses`, :mod:`.a2_ablation`).

- :func:`load_student_module` -- load a student's file afresh (after each edit).
- A grader is a list of named cases run in order and stopped at the first failure (:func:`_grade`); a case calls the
  student's function through :func:`_run` and raises :class:`_Fail` with what is wrong and what to do.
- An untouched template raises ``NotImplementedError`` (as nbgrader's templates do); the graders report it as "not
  implemented yet", and the notebook runs on. :func:`not_implemented`, the older templates' placeholder, still
  gets the same verdict.

Every ``grade_*`` function prints one verdict, ``"Correct: ..."`` or ``"Not yet: ..."`` naming the failing case and
a hint, returns ``True`` only when everything passes, and never raises because of the student's code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import torch

from ._common import NOT_WRITTEN, _stub, _verdict

__all__ = ["NotImplementedYet", "not_implemented", "load_student_module"]


# ---------------------------------------------------------------------------------------------------------------
# Placeholders and student modules


class NotImplementedYet:
    """What :func:`not_implemented` returns; the graders report it as "not implemented yet".

    The templates' first placeholder; they now ``raise NotImplementedError`` instead, as nbgrader's do. Kept so that
    a student file made from an older template still gets its verdict."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}: not implemented yet>"


def not_implemented(name: str = "this function") -> NotImplementedYet:
    """The older templates' placeholder, ``return not_implemented("metric_loss")`` (see :class:`NotImplementedYet`)."""
    return NotImplementedYet(name)


def load_student_module(path: str | Path):
    """Import the Python file ``path`` afresh (no cached copy of an earlier version) and return the module.

    Raises ``FileNotFoundError`` when the file does not exist; errors in the file itself (a syntax error, a failing
    import) propagate with their own traceback, which is what the student needs to see.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    name = f"_student_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


# ---------------------------------------------------------------------------------------------------------------
# Grading machinery: a list of named cases, stopped at the first failure


class _Fail(Exception):
    """A case's verdict: what is wrong and what to do (raised and caught inside the graders only)."""


class _NotYet(_Fail):
    """The student's function is still the template's stub."""


def _grade(name: str, cases: list[tuple[str, Callable[[], None]]]) -> bool:
    for label, case in cases:
        try:
            case()
        except _NotYet:
            return _verdict(
                False,
                f"{name} is not implemented yet -- replace `raise NotImplementedError` in its # YOUR CODE HERE region "
                "with your code.",
            )
        except _Fail as e:
            return _verdict(False, f"{name} fails the case '{label}': {e}")
    labels = ", ".join(label for label, _ in cases)
    return _verdict(True, f"{name} passes all {len(cases)} checks ({labels}).")


def _run(fn, *args):
    """Call the student's function on copies of the tensors; a crash, the stub, ``None`` or a change of the
    inputs in place becomes a :class:`_Fail`. Gradients still reach the original tensors (through the copies)."""
    inputs = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    try:
        out = fn(*inputs)
    except Exception as e:
        if _stub(e):
            raise _NotYet() from None
        raise _Fail(f"your function raised {type(e).__name__}: {e}") from None
    for a, b in zip(args, inputs, strict=True):
        if isinstance(a, torch.Tensor) and not torch.equal(a.detach(), b.detach()):
            raise _Fail(
                "your function changed its inputs in place (e.g. with c /= ..., .clamp_() or .relu_()): the "
                "model's outputs must stay as they are; compute on new tensors."
            )
    if isinstance(out, NotImplementedYet):
        raise _NotYet()
    if out is None:
        raise _Fail("your function returned None -- return the loss.")
    return out


def _scalar(out) -> float:
    if not isinstance(out, torch.Tensor):
        raise _Fail(
            f"return a torch tensor (0-d), not {type(out).__name__}: a Python number has no gradient to train with."
        )
    if out.numel() != 1:
        raise _Fail(f"return one number (a 0-d tensor), got shape {tuple(out.shape)} -- did you forget the mean?")
    value = out.detach().double().reshape(()).item()
    if not math.isfinite(value):
        raise _Fail(f"your loss is {value}.")
    return value


def _close(got: float, want: float, tol: float = 1e-6) -> bool:
    return abs(got - want) <= tol * max(1.0, abs(want))


def _chapter_check(check, fn) -> None:
    """Run a chapter's self-check quietly; its "Not yet" message becomes this case's failure."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            ok = check(fn)
        except Exception as e:  # the chapter checks catch the student's errors; this is a last resort
            raise _Fail(f"your function raised {type(e).__name__}: {e}") from None
    if not ok:
        message = buf.getvalue().strip().removeprefix("Not yet: ")
        if message == NOT_WRITTEN or "NotImplementedYet" in message:  # the older placeholder, unknown to the checks
            raise _NotYet()
        raise _Fail(message)
