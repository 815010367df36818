"""Self-checks for Chapter 10, "Inside the embedding space"."""

from __future__ import annotations

from ._common import _as_tensor, _call, _verdict  # noqa: F401

__all__: list[str] = []
