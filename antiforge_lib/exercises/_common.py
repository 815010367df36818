"""Helpers shared by the self-checks: run the student's function, give a verdict."""

from __future__ import annotations

import torch


def _verdict(ok: bool, message: str) -> bool:
    print(("Correct: " if ok else "Not yet: ") + message)
    return ok


#: The verdict on an exercise whose stub is untouched (it still raises NotImplementedError, as in nbgrader).
NOT_WRITTEN = "your function is not written yet -- replace `raise NotImplementedError` with your code."


def _stub(e: Exception) -> bool:
    """An untouched stub: a bare ``raise NotImplementedError``. One with a message (as torch raises for an operation
    it lacks) is a real error, reported with its message."""
    return isinstance(e, NotImplementedError) and not e.args


def _call(fn, *args):
    """Run the student's function; a bug in it becomes a verdict, not a crash."""
    try:
        out = fn(*args)
    except Exception as e:
        if _stub(e):
            return None, NOT_WRITTEN
        return None, f"your function raised {type(e).__name__}: {e}"
    if out is None:
        return None, "your function returned None -- fill in the exercise and return the result."
    return out, None


def _as_tensor(value, what: str):
    try:
        return torch.as_tensor(value, dtype=torch.float64), None
    except (TypeError, ValueError, RuntimeError):
        return None, f"{what} must be numbers (a tensor, array or list), got {type(value).__name__}"
