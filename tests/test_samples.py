"""samples.sample_pairs, the chapters' one data call, on the tiny FF++-shaped tree standing in for the embedded one."""

import pandas as pd
import pytest
from ffpp_fixture import write_tree

from antiforge_lib import samples
from antiforge_lib.data import pairs, sample

FRAMES, SIZE = 4, 32


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample") / "sample_ffpp"
    write_tree(root)
    return root


@pytest.fixture
def long_form(tree, monkeypatch):
    """The chapters' former three lines, with the tiny tree as the embedded dataset; returns their index."""
    monkeypatch.setattr(sample, "build_sample_ffpp", lambda: tree)
    out = tree.parent / "pairs" / f"sample_c23_c40_{FRAMES}f_{SIZE}px"
    return pairs.prepare_pairs(tree, out, hq="c23", lq="c40", frames_per_video=FRAMES, size=SIZE, progress=False)


def test_sample_pairs_is_the_long_form(long_form):
    index = samples.sample_pairs(size=SIZE, frames=FRAMES)
    pd.testing.assert_frame_equal(index, long_form)
    assert index.attrs["report"] == long_form.attrs["report"]
    # another cache name per argument: (c0, c40) pairs are not the (c23, c40) ones
    other = samples.sample_pairs(size=SIZE, frames=FRAMES, hq="c0")
    assert set(other["hq"]).isdisjoint(long_form["hq"]) and "sample_c0_c40_4f_32px" in other["hq"].iloc[0]


def test_per_method_keeps_that_many_pairs_of_each_method(long_form):
    index = samples.sample_pairs(size=SIZE, frames=FRAMES, per_method=3)
    train = long_form[long_form.split == "train"]
    assert train.groupby("method").size().min() > 3  # else the subset would not be a subset
    assert (index[index.split == "train"].groupby("method").size() == 3).all()
    assert set(index.method) == set(long_form.method)
    # the chapters' former snippet, in pandas: the same pairs, in the same order within each split
    want = train.groupby("method").sample(3, random_state=0)
    kept = index[index.split == "train"]
    assert kept["hq"].tolist() == want["hq"].tolist()
    for split in ("val", "test"):  # kept whole
        assert index[index.split == split]["hq"].tolist() == long_form[long_form.split == split]["hq"].tolist()


def test_per_method_per_split(long_form):
    index = samples.sample_pairs(size=SIZE, frames=FRAMES, per_method={"train": 2, "val": None, "test": 1})
    sizes = index.groupby(["split", "method"]).size()
    assert (sizes["train"] == 2).all() and (sizes["test"] == 1).all()
    assert (sizes["val"] == long_form[long_form.split == "val"].groupby("method").size()).all()
    assert set(samples.sample_pairs(size=SIZE, frames=FRAMES, per_method={"test": 0}).split) == {"train", "val"}
    with pytest.raises(ValueError, match=r"split\(s\) \['tset'\]"):
        samples.sample_pairs(size=SIZE, frames=FRAMES, per_method={"tset": 1})
    with pytest.raises(ValueError, match="ask for at most"):
        samples.sample_pairs(size=SIZE, frames=FRAMES, per_method=10_000)
