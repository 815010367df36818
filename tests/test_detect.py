"""antiforge_lib.detect: the same face crop as the pair cache, the LQ branch's score, attention, videos, errors."""

import numpy as np
import pytest
import torch
from ffpp_fixture import NO_FACE, real_clip
from PIL import Image

from antiforge_lib.data import faces
from antiforge_lib.data.pairs import frame_indices
from antiforge_lib.data.sample import default_sample_root
from antiforge_lib.data.video import encode_video, read_video
from antiforge_lib.detect import Detection, NoFaceError, detect, detect_files, load_detector
from antiforge_lib.models import SingleBranchNet, TwoBranchNet
from antiforge_lib.samples import sample_path

SIZE = 64


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return TwoBranchNet("resnet18", "layer3", attention=True).eval()


@pytest.fixture(scope="module")
def photo():
    return np.asarray(Image.open(sample_path()).convert("RGB"))


def expected_crop(frame, scale=1.3):
    box = faces.clamp_box(faces.square_box(faces.detect_face(frame), scale), *frame.shape[:2])
    return box, faces.crop_box(frame, box)


def direct_scores(model, crops, size=SIZE):
    """||c|| of the LQ branch, computed without detect(): bicubic resize, (x/255 - 0.5) / 0.5."""
    x = np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.Resampling.BICUBIC)) for c in crops])
    x = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        return model.forward_lq(x).c.norm(dim=1).numpy()


def test_image_crop_score_and_attention(net, photo):
    res = detect(sample_path(), net, size=SIZE)
    assert isinstance(res, Detection) and res.kind == "image" and res.source == str(sample_path())
    box, crop = expected_crop(photo)
    assert res.box == box and np.array_equal(res.crop, crop) and res.crop.dtype == np.uint8
    assert res.score == pytest.approx(float(direct_scores(net, [crop])[0]), rel=1e-5)
    assert res.threshold == pytest.approx(9.05) and res.is_fake == (res.score > 9.05)
    assert res.score_type == "norm" and res.frame_scores.tolist() == [res.score]
    assert res.attention.shape == crop.shape[:2] and res.attention.dtype == np.float32
    assert 0 <= res.attention.min() and res.attention.max() <= 1
    assert not net.training  # mode restored (it was eval)


def test_pil_and_array_inputs_match_the_file_and_mode_is_restored(net, photo):
    net.train()
    try:
        a = detect(photo, net, size=SIZE, threshold=0.0)
        assert net.training
    finally:
        net.eval()
    b = detect(Image.fromarray(photo), net, size=SIZE)
    c = detect(sample_path(), net, size=SIZE)
    assert a.source == "the image" and a.score == pytest.approx(c.score) and b.score == pytest.approx(c.score)
    assert a.threshold == 0.0 and a.is_fake


def test_config_sets_size_and_threshold(net, photo):
    res = detect(photo, net, config={"size": 32, "r_minus": 0.0, "r_plus": 2.0})
    assert res.threshold == pytest.approx(1.0)
    _, crop = expected_crop(photo)
    assert res.score == pytest.approx(float(direct_scores(net, [crop], size=32)[0]), rel=1e-5)


def test_ce_head_gives_a_probability(photo, single):
    model = single
    res = detect(photo, model, size=SIZE)
    _, crop = expected_crop(photo)
    x = np.array(Image.fromarray(crop).resize((SIZE, SIZE), Image.Resampling.BICUBIC))
    x = (torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        p = torch.softmax(model(x).logits, dim=1)[0, 1].item()
    assert res.score == pytest.approx(p, rel=1e-5) and res.threshold == 0.5 and res.score_type == "probability"
    assert res.attention.shape == crop.shape[:2]


def test_no_face_and_unreadable_files_are_named(net, tmp_path):
    gray = tmp_path / "gray.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(gray)
    with pytest.raises(ValueError, match=rf"no face found in {gray}"):
        detect(gray, net, size=SIZE)
    with pytest.raises(NoFaceError, match="no face found in the image"):
        detect(np.full((120, 160, 3), 128, np.uint8), net, size=SIZE)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match=rf"{junk}: cannot read it as an image or as a video"):
        detect(junk, net, size=SIZE)
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        detect(tmp_path / "nowhere.png", net, size=SIZE)
    with pytest.raises(ValueError, match="uint8 RGB"):
        detect(np.zeros((10, 10), np.float32), net, size=SIZE)


def test_detect_files_scores_each_file_and_reports_failures_without_stopping(net, tmp_path):
    gray = tmp_path / "gray.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(gray)
    seen = []
    out = detect_files([gray, sample_path()], net, size=SIZE, on_result=lambda *a: seen.append(a))
    assert set(out[0]) == {"input", "error"} and out[0]["error"].startswith(f"no face found in {gray}")
    assert "\n" not in out[0]["error"]
    assert out[1] == detect(sample_path(), net, size=SIZE).to_dict()  # the second file still ran
    expected = [(str(gray), True, False), (str(sample_path()), False, True)]
    assert [(p, r is None, e is None) for p, r, e in seen] == expected


def test_sixteen_bit_grey_images_keep_their_tones(tmp_path):
    """An ``I;16`` PNG (0..65535) reads as the same picture in 8 bits (value / 257), not clipped to white."""
    from antiforge_lib.detect import _read_image

    grey16 = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).astype(np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(grey16).save(path)
    assert Image.open(path).mode.startswith("I")
    got = _read_image(path)
    assert got.shape == (64, 64, 3) and got.dtype == np.uint8
    expected = np.round(grey16 / 65535 * 255).astype(np.uint8)
    assert np.abs(got[..., 0].astype(int) - expected).max() <= 1 and (got[..., 0] == got[..., 2]).all()
    clipped = np.asarray(Image.open(path).convert("RGB"))  # what the naive conversion does: white almost everywhere
    assert (clipped == 255).mean() > 0.9 and (got == 255).mean() < 0.01


def _expected_video(path, k):
    """Boxes and crops as prepare_pairs' rule gives them: detect, square x1.3, smooth (5), clamp, crop."""
    video = read_video(path)
    idx = frame_indices(len(video), k)
    boxes = np.full((len(idx), 4), np.nan)
    for j, n in enumerate(idx):
        found = faces.detect_face(video[n])
        if found is not None:
            boxes[j] = faces.square_box(found, 1.3)
    boxes = faces.smooth_boxes(boxes, 5)
    keep = [j for j in range(len(idx)) if not np.isnan(boxes[j]).any()]
    out = [faces.clamp_box(boxes[j], *video.shape[1:3]) for j in keep]
    return [int(idx[j]) for j in keep], out, [faces.crop_box(video[idx[j]], b) for j, b in zip(keep, out, strict=True)]


def test_video_frames_scores_and_no_face_frames(net, tmp_path):
    path = encode_video(real_clip(5), tmp_path / "clip.mp4", "c23")  # frames 6 and 7 hide the face
    res = detect(path, net, size=SIZE, frames=8)
    numbers, boxes, crops = _expected_video(path, 8)
    assert res.kind == "video" and [f.frame for f in res.frames] == numbers == [0, 1, 2, 3, 4, 5]
    assert res.no_face_frames == NO_FACE["005"]
    assert [f.box for f in res.frames] == boxes
    assert all(np.array_equal(f.crop, c) for f, c in zip(res.frames, crops, strict=True))
    np.testing.assert_allclose(res.frame_scores, direct_scores(net, crops), rtol=1e-5)
    assert res.score == pytest.approx(res.frame_scores.mean())
    assert res.is_fake == (res.score > res.threshold)
    top = max(res.frames, key=lambda f: f.score)
    assert res.box == top.box and res.attention.shape == top.crop.shape[:2]
    d = res.to_dict()
    assert d["frames"] == numbers and d["frame_scores"] == pytest.approx(res.frame_scores.tolist())


def test_video_with_no_face_anywhere(net, tmp_path):
    path = encode_video(np.full((4, 64, 64, 3), 128, np.uint8), tmp_path / "empty.mp4", "c23")
    with pytest.raises(NoFaceError, match=rf"no face found in {path}"):
        detect(path, net, size=SIZE)


def test_sample_ffpp_clip(net):
    clip = default_sample_root() / "manipulated_sequences/SelfBlend/c40/videos/000_001.mp4"
    if not clip.is_file():
        pytest.skip("the embedded mini FF++ is not built here (python -m antiforge_lib.data.sample build)")
    res = detect(clip, net, size=SIZE, frames=4)
    numbers, boxes, _ = _expected_video(clip, 4)
    assert [f.frame for f in res.frames] == numbers and [f.box for f in res.frames] == boxes
    assert res.score == pytest.approx(res.frame_scores.mean())


# ---------------------------------------------------------------------------------------------------------------
# load_detector


def _save(path, model, config, epoch=0):
    torch.save({"model": model.state_dict(), "opt": None, "callbacks": {}, "epoch": epoch, "config": config}, path)


@pytest.fixture(scope="module")
def single():
    torch.manual_seed(1)
    return SingleBranchNet("resnet18", "layer3", head="ce", attention=True).eval()


def test_load_detector_rebuilds_each_kind(tmp_path, net, single, photo):
    cfg = {"backbone": "resnet18", "split": "layer3", "size": SIZE, "r_minus": 0.1, "r_plus": 18.0}
    nets = {
        "two-branch": net,
        "single-ce": single,
        "single-metric": SingleBranchNet("resnet18", "layer3", head="metric").eval(),
    }
    x = torch.randn(2, 3, SIZE, SIZE)
    for kind, model in nets.items():
        path = tmp_path / f"{kind}.pth"
        _save(path, model, cfg)
        loaded, config = load_detector(path)
        assert config["model"] == kind and type(loaded) is type(model) and not loaded.training
        assert config["attention"] == (kind != "single-metric")
        assert loaded.antiforge_config is config
        for k, v in model.state_dict().items():
            assert torch.equal(v, loaded.state_dict()[k]), k
        run = "forward_lq" if kind == "two-branch" else "forward"
        with torch.no_grad():
            torch.testing.assert_close(getattr(loaded, run)(x).c, getattr(model, run)(x).c)
    assert detect(photo, loaded).attention is None  # the single-metric net has no attention layer
    (tmp_path / "two-branch.pth").rename(tmp_path / "detector.pth")
    loaded, config = load_detector(tmp_path)  # a run folder: detector.pth, else checkpoint.pth
    res = detect(photo, loaded)  # size and threshold from the checkpoint's config
    assert res.score == pytest.approx(detect(photo, net, size=SIZE).score, rel=1e-5)
    assert res.threshold == pytest.approx(9.05)


def test_load_detector_errors_name_the_file(tmp_path, single):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_detector(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match="without detector.pth or checkpoint.pth"):
        load_detector(tmp_path)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=rf"{bad}: not a readable checkpoint"):
        load_detector(bad)
    bare = tmp_path / "bare.pth"
    torch.save(single.state_dict(), bare)
    with pytest.raises(ValueError, match="bare state dict"):
        load_detector(bare)
    noconf = tmp_path / "noconf.pth"
    _save(noconf, single, {})
    with pytest.raises(ValueError, match="lacks"):
        load_detector(noconf)
    wrong = tmp_path / "wrong.pth"
    _save(wrong, single, {"backbone": "resnet18", "split": "layer4"})
    with pytest.raises(ValueError, match="do not fit"):
        load_detector(wrong)
    mislabelled = tmp_path / "mislabelled.pth"
    _save(mislabelled, single, {"backbone": "resnet18", "cut": "layer3", "model": "two-branch"})
    with pytest.raises(ValueError, match="do not fit a two-branch resnet18/layer3 net"):
        load_detector(mislabelled)
