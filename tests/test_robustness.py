"""Codecs beyond c23/c40: round trips, bits per pixel, points that crop the cache's own frames and boxes, curves."""

import io
import json

import av
import numpy as np
import pytest
import torch
from ffpp_fixture import write_tree
from PIL import Image

from antiforge_lib import robustness as R
from antiforge_lib.config import TrainConfig
from antiforge_lib.data import PairedFaces
from antiforge_lib.data.index import load_index
from antiforge_lib.data.pairs import prepare_pairs
from antiforge_lib.metrics import evaluate
from antiforge_lib.models import SingleBranchNet
from antiforge_lib.run import export_detector, load_detector

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ALL = ("h264", "hevc", "vp9", "av1", "jpeg")
MILD = {"h264": 18, "hevc": 18, "vp9": 20, "av1": 20, "jpeg": 90}


def clip(frames: int = 6, h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth gradients with a moving bright square and mild noise: something a codec can both keep and lose."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w]
    out = np.empty((frames, h, w, 3), np.uint8)
    for t in range(frames):
        base = np.stack([x * 255 / w, y * 255 / h, (x + y + 8 * t) % 256], axis=-1)
        base[10 + t : 26 + t, 20 + 2 * t : 36 + 2 * t] = 230
        out[t] = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def test_the_installed_pyav_has_every_codec_of_the_study():
    assert R.available_codecs() == list(ALL)
    assert {R.CODECS[c].encoder for c in ALL[:4]} <= set(av.codecs_available)


@pytest.mark.parametrize("name", ALL)
def test_every_codec_round_trips_a_small_clip(name):
    frames = clip()
    decoded, enc = R.roundtrip(frames, name, MILD[name])
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert psnr(frames, decoded) > 30, psnr(frames, decoded)
    assert enc.frames == len(frames) and (enc.height, enc.width) == frames.shape[1:3]
    assert enc.bpp == enc.nbytes * 8 / frames[..., 0].size


def test_jpeg_is_pillow_frame_by_frame():
    frames = clip()
    decoded, enc = R.roundtrip(frames, "jpeg", 40)
    sizes, ref = 0, []
    for f in frames:  # the reference: Pillow directly, one file per frame
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=40)
        sizes += buf.tell()
        ref.append(np.asarray(Image.open(buf).convert("RGB")))
    assert enc.nbytes == sizes
    np.testing.assert_array_equal(decoded, np.stack(ref))


def test_video_bytes_are_the_packets_the_container_holds():
    frames = clip()
    _, enc = R.roundtrip(frames, "h264", 30)
    with av.open(io.BytesIO(enc.chunks[0])) as c:  # demuxed independently of the library
        packets = [p.size for p in c.demux(video=0) if p.size]
    assert enc.nbytes == sum(packets) and 0 < enc.nbytes < len(enc.chunks[0])


@pytest.mark.parametrize("name", ALL)
def test_bits_per_pixel_rise_as_compression_weakens(name):
    codec = R.CODECS[name]
    frames = clip(frames=8)
    mild_to_strong = sorted(codec.strengths, reverse=not codec.stronger_is_higher)
    assert mild_to_strong == list(codec.strengths)  # the default sweep runs from mild to strong
    bpp = [R.encode(frames, name, s).bpp for s in mild_to_strong]
    assert all(a > b for a, b in zip(bpp, bpp[1:], strict=False)), (name, bpp)


def test_unknown_or_missing_codec_is_one_line(monkeypatch):
    with pytest.raises(ValueError) as e:
        R.get_codec("divx")
    msg = str(e.value)
    assert "\n" not in msg and "'divx'" in msg and "h264, hevc, vp9, av1, jpeg" in msg
    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {"libsvtav1"})
    with pytest.raises(ValueError) as e:
        R.encode(clip(), "av1", 30)
    msg = str(e.value)
    assert "\n" not in msg and "'av1'" in msg and "libsvtav1" in msg and "av1" not in msg.split("available here:")[1]
    with pytest.raises(ValueError, match=r"^h264: crf must be an integer in 0\.\.51, got 52$"):
        R.encode(clip(), "h264", 52)


# ---------------------------------------------------------------------------------------------------------------
# Points of a pair cache


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The test FF++ tree and a (c23, c40) pair cache of it: 4 frames per video, 32 px."""
    tree = tmp_path_factory.mktemp("ffpp")
    write_tree(tree)
    pairs = tmp_path_factory.mktemp("pairs") / "c23_c40"
    prepare_pairs(tree, pairs, hq="c23", lq="c40", frames_per_video=4, size=32, workers=1, progress=False)
    return tree, pairs


POINTS = [("h264", 40), ("h264", 23), ("hevc", 35), ("vp9", 50), ("av1", 50), ("jpeg", 30)]


@pytest.fixture(scope="module")
def points(cache, tmp_path_factory):
    tree, pairs = cache
    out = tmp_path_factory.mktemp("points")
    return {(c, s): R.prepare_point(pairs, tree, c, s, out_dir=out) for c, s in POINTS}


def test_every_point_has_the_caches_frames_boxes_and_masks(cache, points):
    _, pairs = cache
    index = load_index(pairs)
    test = index[index["split"] == "test"].reset_index(drop=True)
    cols = ["split", "method", "video", "frame", "label", "mask", "x0", "y0", "x1", "y1"]
    for key, point in points.items():
        assert len(point) == len(test) > 0, key
        for col in cols:
            assert point[col].map(str).tolist() == test[col].map(str).tolist() or col == "mask", (key, col)
        same_masks = [
            np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
            for a, b in zip(point["mask"], test["mask"], strict=True)
        ]
        assert all(same_masks), key
        assert (point["hq"] == point["lq"]).all()
        assert Image.open(point["lq"].iloc[0]).size == (32, 32)


def test_h264_at_crf_40_reproduces_the_caches_c40_crops(cache, points):
    # FF++'s c40 is x264 at CRF 40 of the raw video: re-encoding the raw video so gives the cache's LQ crops
    # pixel for pixel, which holds only if the point crops the same frames with the same boxes, resized the same way.
    _, pairs = cache
    index = load_index(pairs)
    test = index[index["split"] == "test"].reset_index(drop=True)
    point = points[("h264", 40)]
    for a, b in zip(point["lq"], test["lq"], strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    changed = [
        not np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
        for a, b in zip(points[("jpeg", 30)]["lq"], test["lq"], strict=True)
    ]
    assert all(changed)


def test_point_bits_per_pixel_is_the_sum_over_the_test_videos(cache, points):
    tree, _ = cache
    point = points[("jpeg", 30)].attrs["point"]
    assert set(point["videos"]) == {"original/004", "original/005", "SelfBlend/004_005", "SelfBlend/005_004"}
    assert point["pixels"] == 4 * 8 * 160 * 160  # four whole videos of 8 frames, 160 x 160
    assert point["bpp"] == sum(point["videos"].values()) * 8 / point["pixels"]
    raw = av.open(str(tree / "original_sequences/youtube/raw/videos/004.mp4"))
    frames = np.stack([f.to_ndarray(format="rgb24") for f in raw.decode(video=0)])
    raw.close()
    jpeg_bytes = 0
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=30)
        jpeg_bytes += buf.tell()
    assert point["videos"]["original/004"] == jpeg_bytes
    h264 = [points[("h264", s)].attrs["point"]["bpp"] for s in (23, 40)]
    assert h264[0] > h264[1]


def test_a_point_resumes_and_a_finished_one_is_not_reencoded(cache, tmp_path, monkeypatch):
    tree, pairs = cache
    first = R.prepare_point(pairs, tree, "jpeg", 50, out_dir=tmp_path)
    folder = tmp_path / "jpeg_quality50"
    (folder / "point.json").unlink()
    (folder / "index.csv").unlink()
    for png in (folder / "original" / "005").glob("*.png"):
        png.unlink()  # as if killed while cropping this video
    calls = []
    real_encode = R.encode
    monkeypatch.setattr(R, "encode", lambda *a, **k: calls.append(1) or real_encode(*a, **k))
    again = R.prepare_point(pairs, tree, "jpeg", 50, out_dir=tmp_path)
    assert len(calls) == 1  # only the damaged video
    assert again.attrs["point"] == first.attrs["point"]
    assert again.drop(columns=[]).equals(first)
    R.prepare_point(pairs, tree, "jpeg", 50, out_dir=tmp_path)
    assert len(calls) == 1


def test_an_unknown_codec_fails_before_any_work(cache, tmp_path):
    tree, pairs = cache
    with pytest.raises(ValueError, match="unknown codec 'mpeg2'"):
        R.robustness_curve({"m": tmp_path / "none"}, ["jpeg", "mpeg2"], pairs=pairs, root=tree, out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# Curves


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """An untrained single-branch detector at 32 px (its scores are arbitrary, which is all a scoring test needs)."""
    torch.manual_seed(0)
    cfg = TrainConfig.preset("demo", size=32, model="single-metric", attention=False)
    model = SingleBranchNet(cfg.backbone, cfg.cut, head="metric", pretrained=False, attention=False, stem=cfg.stem)
    path = tmp_path_factory.mktemp("run") / "tiny" / "detector.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    return export_detector(model, cfg, path)


def test_the_curve_scores_each_point_as_evaluate_does(cache, detector, tmp_path):
    tree, pairs = cache
    df = R.robustness_curve(
        [detector], ["jpeg", "h264"], {"jpeg": [30], "h264": [40]}, pairs=pairs, root=tree, out_dir=tmp_path
    )
    assert df[["model", "codec", "strength"]].values.tolist() == [
        ["tiny", "c40", 40],
        ["tiny", "jpeg", 30],
        ["tiny", "h264", 40],
    ]
    model, config = load_detector(detector)
    for codec, folder in (("jpeg", tmp_path / "jpeg_quality30"), ("c40", None)):
        # directly: the point's own pair index (or the cache's LQ crops), PairedFaces, metrics.evaluate
        index = load_index(folder) if folder else load_index(pairs)
        ds = PairedFaces(index, "test", size=32)
        want = evaluate(model, torch.utils.data.DataLoader(ds, batch_size=7), threshold=9.05).iloc[0]
        got = df[df["codec"] == codec].iloc[0]
        for m in ("AUC", "ACC", "TAR@0.1%", "video_AUC"):
            assert got[m] == pytest.approx(want[m], abs=1e-12) or (np.isnan(got[m]) and np.isnan(want[m])), m
        assert got["n_real"] == want["n_real"] and got["n_fake"] == want["n_fake"]
    # the h264 CRF 40 point is the cache's c40: same faces, same scores
    a, b = df[df["codec"] == "c40"].iloc[0], df[df["codec"] == "h264"].iloc[0]
    assert a["AUC"] == pytest.approx(b["AUC"]) and a["ACC"] == b["ACC"]
    res = json.loads((tmp_path / "robustness.json").read_text())
    assert {"command", "commit", "device", "date"} <= set(res["provenance"])
    assert len(res["rows"]) == 3 and res["models"] == {"tiny": str(detector)}
    again = R.load_robustness(tmp_path / "robustness.json")
    assert again[["model", "codec", "strength", "bpp", "AUC"]].equals(df[["model", "codec", "strength", "bpp", "AUC"]])
    table = R.metric_table(df, "ACC")
    assert list(table.columns) == ["bpp", "tiny"] and list(table.index) == [("c40", 40), ("jpeg", 30), ("h264", 40)]
    assert table.loc[("jpeg", 30), "tiny"] == 100 * df[df["codec"] == "jpeg"]["ACC"].iloc[0]
    fig = R.plot_robustness(df)
    assert [t.name for t in fig.data if t.showlegend] == ["tiny"] and len(fig.layout.annotations) == 2


def test_cli_writes_the_results_and_the_figure(cache, detector, tmp_path, capsys):
    from antiforge_lib import cli

    tree, pairs = cache
    argv = ["robustness", "--checkpoint", detector, "--pairs", pairs, "--root", tree, "--codecs", "jpeg"]
    rc = cli.main([str(a) for a in [*argv, "--strengths", "30", "--out", tmp_path, "--quiet"]])
    out = capsys.readouterr().out
    assert rc == 0, out
    res = json.loads((tmp_path / "robustness.json").read_text())
    assert res["provenance"]["command"].startswith("antiforge robustness --checkpoint")
    assert [(r["codec"], r["strength"]) for r in res["rows"]] == [("c40", 40), ("jpeg", 30)]
    html = (tmp_path / "robustness.html").read_text()
    assert "plotly" in html and "jpeg" in html
    assert f"results: {tmp_path / 'robustness.json'}" in out
    rc = cli.main([str(a) for a in [*argv[:-1], "divx", "--out", tmp_path, "--quiet"]])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "unknown codec 'divx'" in err
