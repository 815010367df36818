"""_io: atomic writes, strict JSON in and out (the folder lock is exercised by the CLI's tests)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from antiforge_lib import _io, provenance
from antiforge_lib._io import atomic_write, json_safe, read_json, write_json


def test_write_json_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "sub" / "r.json"
    write_json(path, {"a": 1, "b": [1.5, "x"]})
    assert json.loads(path.read_text()) == read_json(path) == {"a": 1, "b": [1.5, "x"]}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp file left behind


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = write_json(tmp_path / "r.json", {"a": 1})

    def half_then_crash(tmp):
        Path(tmp).write_text('{"a": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_crash)
    assert read_json(path) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_json_safe_makes_strict_json():
    got = json_safe({1: (np.float32(0.5), torch.tensor([1, 2])), "p": Path("a/b"), "x": [math.nan, -math.inf]})
    assert got == {"1": [0.5, [1, 2]], "p": "a/b", "x": [None, None]}
    json.dumps(got, allow_nan=False)  # raises if anything non-strict slipped through


def test_read_json_names_the_broken_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON"):
        read_json(bad)


def test_provenance_still_exports_the_moved_names():
    for name in _io.__all__:
        assert getattr(provenance, name) is getattr(_io, name), name


def test_quiet_import_silences_only_the_jit_notice_and_only_inside():
    import warnings

    from antiforge_lib._fastai import quiet_import

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_import():
            warnings.warn(
                "`torch.jit.script` is deprecated. Please switch to `torch.compile`", FutureWarning, stacklevel=1
            )
            warnings.warn("another FutureWarning", FutureWarning, stacklevel=1)
        warnings.warn("`torch.jit.script` is deprecated, outside", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["another FutureWarning", "`torch.jit.script` is deprecated, outside"]
