"""Self-checks for Chapter 8, "Measuring a detector"."""

from __future__ import annotations

from ._common import _as_tensor, _call, _verdict  # noqa: F401

__all__: list[str] = []
