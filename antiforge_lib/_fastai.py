"""Importing fastai without its import-time notice (plumbing the book never shows).

Importing fastai makes torch warn that ``torch.jit.script`` is deprecated: fastai's affair, nothing a reader can act
on, and it would print into the chapters. Every fastai import of the library goes through :func:`quiet_import`.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

__all__ = ["quiet_import"]


@contextmanager
def quiet_import():
    """``with quiet_import(): from fastai... import ...``: the imports inside see torch's jit notice silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
        yield
