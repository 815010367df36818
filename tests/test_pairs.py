"""FFPPLayout, faces and prepare_pairs on a tiny FF++-shaped tree written by the tests."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import lock_held_elsewhere
from ffpp_fixture import FRAMES, real_clip, write_tree
from PIL import Image

from antiforge_lib.data import faces, pairs
from antiforge_lib.data import layout as ffpp
from antiforge_lib.data.video import encode_video, read_video
from antiforge_lib.jpeg import psnr
from antiforge_lib.samples import face_image

# FF++'s own split files: a copy lies in the shared folder beside the clone (not committed here).
SHARED_SPLITS = Path(
    os.environ.get("ANTIFORGE_SHARED_SPLITS", Path(__file__).resolve().parents[2] / "shared" / "data" / "ffpp-splits")
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("ffpp")
    write_tree(root)
    return root


@pytest.fixture(scope="module")
def cache(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs")
    index = pairs.prepare_pairs(tree, out, hq="c0", lq="c40", frames_per_video=FRAMES, size=64, workers=2)
    return out, index


def _img(path):
    return torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255)


# -- the official splits ---------------------------------------------------------
def test_official_splits_sizes():
    if not SHARED_SPLITS.is_dir():
        pytest.fail(f"{SHARED_SPLITS} missing: put FF++'s split files there or set ANTIFORGE_SHARED_SPLITS")
    splits = ffpp.load_splits(splits_dir=SHARED_SPLITS, download=False)
    assert {k: len(v) for k, v in splits.items()} == {"train": 360, "val": 70, "test": 70}
    videos = {k: {i for p in v for i in p} for k, v in splits.items()}
    assert {k: len(v) for k, v in videos.items()} == {"train": 720, "val": 140, "test": 140}
    assert not (videos["train"] & videos["test"]) and not (videos["train"] & videos["val"])


def test_missing_splits_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTIFORGE_FFPP_SPLITS", raising=False)

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(ffpp.urllib.request, "urlopen", offline)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "ffpp"
    root.mkdir()
    with pytest.raises(ffpp.LayoutError, match="github.*ondyari/FaceForensics.*splits") as e:
        ffpp.FFPPLayout(root)
    assert "no network" in str(e.value) and str(root) in str(e.value)
    assert list(root.iterdir()) == [] and not (tmp_path / "cache").exists()  # nothing written, anywhere


def test_layout_lists_missing_and_present_folders(tree, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tree, partial)
    shutil.rmtree(partial / "manipulated_sequences/SelfBlend/c40")
    layout = ffpp.FFPPLayout(partial, download_splits=False)
    with pytest.raises(ffpp.LayoutError) as e:
        layout.check(["SelfBlend", "Deepfakes"])
    msg = str(e.value)
    assert "manipulated_sequences/SelfBlend/c40/videos" in msg.split("Present:")[0]
    assert "method Deepfakes" in msg
    assert "original_sequences/youtube/c23/videos" in msg.split("Present:")[1]
    out = tmp_path / "never"
    with pytest.raises(ffpp.LayoutError):
        pairs.prepare_pairs(partial, out, methods=["SelfBlend"])
    assert not out.exists(), "a failed layout check must write nothing"


def test_layout_videos(tree):
    layout = ffpp.FFPPLayout(tree, download_splits=False)
    assert layout.methods() == ["SelfBlend"]
    vids = layout.videos()
    assert sum(v.label == 0 for v in vids) == 6 and sum(v.label == 1 for v in vids) == 6
    present, missing = layout.check()
    assert len(present) == 12 and not missing


# -- faces -----------------------------------------------------------------------
def test_detect_face_on_a_real_photo_and_not_on_a_flat_image():
    photo = np.asarray(face_image(crop=False))
    x0, y0, x1, y1 = faces.detect_face(photo)
    assert x0 < 222 < x1 and y0 < 126 < y1  # the face centre, read off the photo by hand
    assert faces.detect_face(np.full((200, 200, 3), 128, np.uint8)) is None


def test_box_helpers_hand_computed():
    assert faces.square_box((10, 20, 30, 60), 1.5) == (-10.0, 10.0, 50.0, 70.0)
    assert faces.clamp_box((-10, 10, 50, 70), 100, 100) == (0, 10, 60, 70)  # shifted, not squeezed
    # larger than the image: side = the shorter image side (80), centre (100, 100) pushed back inside
    assert faces.clamp_box((-50, -50, 250, 250), 100, 80) == (0, 20, 80, 100)
    b = np.array([[0, 0, 10, 10], [2, 2, 12, 12], [np.nan] * 4, [4, 4, 14, 14]], dtype=float)
    s = faces.smooth_boxes(b, 3)
    np.testing.assert_allclose(s[0], [1, 1, 11, 11])
    np.testing.assert_allclose(s[1], [1, 1, 11, 11])
    assert np.isnan(s[2]).all()
    np.testing.assert_allclose(s[3], [4, 4, 14, 14])


def test_frame_indices_even_and_deterministic():
    np.testing.assert_array_equal(pairs.frame_indices(10, 4), [0, 3, 6, 9])
    np.testing.assert_array_equal(pairs.frame_indices(5, 270), [0, 1, 2, 3, 4])
    with pytest.raises(ValueError):
        pairs.frame_indices(0, 3)


# -- prepare_pairs -----------------------------------------------------------------
def test_index_rows_and_no_face_count(cache):
    out, index = cache
    assert list(index.columns) == pairs.INDEX_COLUMNS
    report = index.attrs["report"]
    # video 005 hides its face in 2 frames; so does fake 005_004, made from it
    assert report["no_face_frames"] == 4
    assert len(index) == 12 * FRAMES - 4
    assert set(index.split) == {"train", "val", "test"}
    assert (index.label == (index.method != "original")).all()
    table = pd.crosstab(index.split, index.label)  # the report's real/fake pairs per split, counted by pandas
    assert list(report["splits"]) == ["train", "val", "test"]
    assert report["splits"] == {s: {"real": int(table.loc[s, 0]), "fake": int(table.loc[s, 1])} for s in table.index}
    assert all(Path(p).is_file() for p in index[["hq", "lq", "mask"]].to_numpy().ravel())
    assert not list(out.rglob("*.part"))


def test_hq_and_lq_crops_share_the_box(cache):
    _, index = cache
    same, other = [], []
    for _, g in index[index.method == "original"].groupby("video"):
        rows = g.to_dict("records")
        for i, a in enumerate(rows):
            far = rows[(i + len(rows) // 2) % len(rows)]  # the same video, half the clip away
            same.append(psnr(_img(a["hq"]), _img(a["lq"])))
            other.append(psnr(_img(a["hq"]), _img(far["lq"])))
    assert np.median(same) > np.median(other) + 6, (np.median(same), np.median(other))


def test_masks_binary_and_on_the_manipulated_region(cache, tree):
    _, index = cache
    assert all((np.asarray(Image.open(p)) == 0).all() for p in index[index.label == 0]["mask"])
    layout = ffpp.FFPPLayout(tree, download_splits=False)
    inside = []
    for r in index[index.label == 1].itertuples():
        m = np.asarray(Image.open(r.mask))
        assert set(np.unique(m)) <= {0, 255}
        # Where the lossless fake differs from its real frame, cropped with this row's box.
        fake = read_video(layout.video_path(r.video, "SelfBlend", "c0"), [r.frame])[0].astype(int)
        real = read_video(layout.video_path(r.video.split("_")[0], "original", "c0"), [r.frame])[0].astype(int)
        changed = (np.abs(fake - real).max(-1) > 12).astype(np.uint8)[r.y0 : r.y1, r.x0 : r.x1]
        changed = np.asarray(Image.fromarray(changed * 255).resize(m.shape[::-1], Image.Resampling.NEAREST)) > 0
        if changed.sum() > 20:
            inside.append((changed & (m > 0)).sum() / changed.sum())
    assert len(inside) > 10 and np.median(inside) > 0.9, inside


def test_corrupt_video_is_reported_and_leaves_nothing(tree, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tree, broken)
    bad = broken / "original_sequences/youtube/c40/videos/002.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.warns(UserWarning, match="skipped 1 video.*002.mp4"):
        index = pairs.prepare_pairs(broken, tmp_path / "out", frames_per_video=4, size=32, workers=1, progress=False)
    skipped = index.attrs["report"]["skipped"]
    assert "original/002" in skipped and "002.mp4" in skipped["original/002"]
    assert "002" not in set(index.video)
    assert not list((tmp_path / "out" / "original" / "002").glob("*.png"))


def test_interrupted_run_resumes_to_the_same_index(tree, tmp_path, monkeypatch):
    kw = dict(frames_per_video=4, size=32, workers=1, progress=False)
    clean = pairs.prepare_pairs(tree, tmp_path / "clean", **kw)
    real = pairs._process_video
    calls = {"n": 0}

    def dies_after_five(job):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(pairs, "_process_video", dies_after_five)
    with pytest.raises(KeyboardInterrupt):
        pairs.prepare_pairs(tree, tmp_path / "resumed", **kw)
    monkeypatch.setattr(pairs, "_process_video", real)
    done = list((tmp_path / "resumed").rglob("_done.json"))
    assert len(done) == 5 and not (tmp_path / "resumed" / "index.csv").exists()
    for stale in (done[0].parent / "0000_hq.png.tmp", done[0].parent / ".0000_lq.png.part"):  # a kill mid-write
        stale.write_bytes(b"half")
    resumed = pairs.prepare_pairs(tree, tmp_path / "resumed", **kw)
    strip = lambda df, root: df.assign(**{k: df[k].str.replace(str(root), "") for k in ("hq", "lq", "mask")})  # noqa: E731
    assert strip(resumed, tmp_path / "resumed").equals(strip(clean, tmp_path / "clean"))
    assert not list((tmp_path / "resumed").rglob("*.part")) and not list((tmp_path / "resumed").rglob("*.tmp"))
    assert pairs.load_index(tmp_path / "resumed").equals(resumed)


def test_rerunning_prepare_repairs_deleted_and_cut_short_crops(tree, tmp_path):
    kw = dict(frames_per_video=4, size=32, workers=1, progress=False)
    index = pairs.prepare_pairs(tree, tmp_path / "c", **kw)
    digest = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()  # noqa: E731
    before = {p: digest(p) for p in set(index.hq) | set(index.lq) | set(index["mask"])}
    deleted, cut = index.hq.iloc[0], index.lq.iloc[-1]
    Path(deleted).unlink()
    Path(cut).write_bytes(Path(cut).read_bytes()[:40])  # a disk that filled up mid-write
    (tmp_path / "c" / "_zero_mask.png").unlink()
    again = pairs.prepare_pairs(tree, tmp_path / "c", **kw)
    assert again.equals(index) and {p: digest(p) for p in before} == before
    # Damage that keeps the size (a flipped block) needs the full check: verify=True decodes every crop.
    hits = [Path(index.hq.iloc[-1]), tmp_path / "c" / "_zero_mask.png"]
    for hit in hits:
        data = bytearray(hit.read_bytes())
        data[40:60] = bytes(20)
        hit.write_bytes(bytes(data))
    pairs.prepare_pairs(tree, tmp_path / "c", **kw)
    assert all(digest(hit) != before[str(hit)] for hit in hits)  # the cheap check cannot see it
    pairs.prepare_pairs(tree, tmp_path / "c", verify=True, **kw)
    assert {p: digest(p) for p in before} == before


def test_a_split_that_loses_a_class_is_named(tree, tmp_path, monkeypatch):
    real = pairs._process_video

    def no_face_in_val_reals(job):
        res = real(job)
        if res["video"]["split"] == "val" and res["video"]["method"] == "original":
            res = {**res, "rows": [], "no_face": res["no_face"] + len(res["rows"])}
        return res

    monkeypatch.setattr(pairs, "_process_video", no_face_in_val_reals)
    with pytest.warns(UserWarning, match="split 'val' of .* has no real face left"):
        index = pairs.prepare_pairs(tree, tmp_path / "c", frames_per_video=4, size=32, workers=1, progress=False)
    from antiforge_lib.learner import TrainConfig, make_dataloaders

    with pytest.raises(ValueError, match="'val' split of the pair index has no real pairs"):
        make_dataloaders(index, TrainConfig(backbone="resnet18", cut="layer4", size=32), num_workers=0)


def test_cache_refuses_other_arguments(tree, tmp_path):
    pairs.prepare_pairs(tree, tmp_path / "c", frames_per_video=2, size=32, workers=1, progress=False)
    with pytest.raises(ValueError, match="other arguments"):
        pairs.prepare_pairs(tree, tmp_path / "c", frames_per_video=3, size=32, workers=1, progress=False)


def test_crf40_files_are_smaller_than_crf23(tree):
    layout = ffpp.FFPPLayout(tree, download_splits=False)
    for v in layout.videos():
        assert layout.video_path(v, level="c40").stat().st_size < layout.video_path(v, level="c23").stat().st_size


def test_splits_json_roundtrip(tree):
    assert json.loads((tree / "splits" / "test.json").read_text()) == [["004", "005"]]


def test_missing_videos_are_an_error_unless_allowed(tree, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tree, partial)
    (partial / "manipulated_sequences/SelfBlend/masks/videos/002_003.mp4").unlink()
    with pytest.raises(ffpp.LayoutError, match=r"1 of 12 videos .* SelfBlend/002_003\. 11 are present"):
        pairs.prepare_pairs(partial, tmp_path / "a", frames_per_video=2, size=32, workers=1, progress=False)
    index = pairs.prepare_pairs(
        partial, tmp_path / "b", frames_per_video=2, size=32, workers=1, progress=False, allow_missing=True
    )
    assert index.attrs["report"]["missing"] == ["SelfBlend/002_003"]
    assert "002_003" not in set(index.video)


def test_changed_source_video_is_cropped_again(tree, tmp_path):
    kw = dict(frames_per_video=2, size=32, workers=1, progress=False)
    first = pairs.prepare_pairs(tree, tmp_path / "c", **kw)
    done = {p: p.stat().st_mtime_ns for p in (tmp_path / "c").rglob("_done.json")}
    layout = ffpp.FFPPLayout(tree, download_splits=False)
    row = first.iloc[0]
    src = layout.video_path(row.video, row.method, "c23")
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # as if re-encoded
    try:
        again = pairs.prepare_pairs(tree, tmp_path / "c", **kw)
    finally:
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    redone = [p for p, t in done.items() if p.stat().st_mtime_ns != t]
    assert [p.parent.name for p in redone] == [row.video]
    assert again.equals(first)


def _prepare_in_child(args):
    tree, out = args
    return pairs.prepare_pairs(tree, out, frames_per_video=2, size=32, workers=1, progress=False)[["video", "frame"]]


def test_two_processes_preparing_one_cache_at_once(tree, tmp_path):
    # Two notebooks may prepare the same cache at the same time: one builds, the other waits and reuses it.
    import multiprocessing

    with multiprocessing.get_context("forkserver").Pool(2) as pool:
        a, b = pool.map(_prepare_in_child, [(tree, tmp_path / "c")] * 2)
    assert a.equals(b) and len(a) > 0
    assert not list((tmp_path / "c").rglob("*.part"))


def test_pairs_module_and_index_reader_do_not_import_torch():
    # prepare_pairs' and build_sample_ffpp's worker processes import these modules; with torch in its imports each
    # worker spent ~6 s starting, and 2 workers were no faster than 1 on the embedded sample. The package
    # antiforge_lib.data re-exports its torch loaders, so this also checks that it does so only on first use.
    code = (
        "import sys, antiforge_lib.data.layout, antiforge_lib.data.pairs, antiforge_lib.data.index; "
        "import antiforge_lib.data.sample, antiforge_lib.self_blend, antiforge_lib.samples; "
        "print(sorted(m for m in ('torch', 'fastai', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_old_module_paths_are_the_same_modules():
    # Chapter 2's modules moved into antiforge_lib.data; code (and monkeypatching) that names the old paths must
    # reach the very same module objects.
    import importlib

    import antiforge_lib.data
    from antiforge_lib.data import loaders

    moved = {"ffpp": "layout", "video": "video", "faces": "faces", "pairs": "pairs", "pair_index": "index"}
    moved["sample_ffpp"] = "sample"
    for old, new in moved.items():
        assert importlib.import_module(f"antiforge_lib.{old}") is importlib.import_module(f"antiforge_lib.data.{new}")
    # the lazy re-exports: every class and function the loaders define, and their constants
    defined = {n for n, v in vars(loaders).items() if getattr(v, "__module__", None) == loaders.__name__}
    assert {n for n in defined if not n.startswith("_")} <= set(antiforge_lib.data.__all__)
    assert all(getattr(antiforge_lib.data, name) is getattr(loaders, name) for name in antiforge_lib.data.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        antiforge_lib.data.nothing  # noqa: B018


def test_fake_frames_the_manipulation_left_alone_are_not_forgeries(tree, tmp_path):
    # A "fake" whose frames equal the real ones and whose mask is empty (e.g. the manipulation found no face there)
    # is no forgery: its rows are left out and counted, not labelled fake.
    copy = tmp_path / "tree"
    shutil.copytree(tree, copy)
    fakes = copy / "manipulated_sequences/SelfBlend"
    for lv in ("raw", "c23", "c40"):
        shutil.copy(copy / f"original_sequences/youtube/{lv}/videos/000.mp4", fakes / lv / "videos/000_001.mp4")
    black = np.zeros((FRAMES, 160, 160, 3), np.uint8)
    encode_video(black, fakes / "masks/videos/000_001.mp4", "c0")
    index = pairs.prepare_pairs(copy, tmp_path / "out", frames_per_video=FRAMES, size=32, workers=1, progress=False)
    assert "000_001" not in set(index.video)
    assert index.attrs["report"]["unmanipulated_fake_frames"] == FRAMES
    assert (index.label == 1).sum() > 0  # the other fakes are kept


def _write_videos(folder, n=3):
    folder.mkdir()
    for k in range(n):
        encode_video(real_clip(k), folder / f"person{k}.mp4", "c23")
    return folder


def test_prepare_faces_crops_real_videos_into_a_real_only_cache(tmp_path):
    videos = _write_videos(tmp_path / "videos")
    (videos / "notes.txt").write_text("not a video")
    index = pairs.prepare_faces(videos, tmp_path / "cache", val=["person1.mp4"], frames_per_video=4, size=32, workers=1)
    assert list(index.columns) == pairs.INDEX_COLUMNS
    assert set(index.video) == {"person0", "person1", "person2"}
    assert (index.label == 0).all() and (index.method == "original").all() and (index.lq == index.hq).all()
    assert set(index[index.video == "person1"].split) == {"val"}
    assert set(index[index.video != "person1"].split) == {"train"}
    # The same box rule as prepare_pairs: the crop is the x1.3 square around the detected face.
    r = index.iloc[0]
    frame = read_video(videos / f"{r.video}.mp4", [r.frame])[0]
    box = faces.clamp_box(faces.square_box(faces.detect_face(frame), 1.3), *frame.shape[:2])
    assert abs(r.x1 - r.x0 - (box[2] - box[0])) <= 4
    assert pairs.load_index(tmp_path / "cache").equals(index)
    # A fraction holds out at least one video, picked from the sorted names.
    auto = pairs.prepare_faces(videos, tmp_path / "auto", val=0.2, frames_per_video=2, size=32, workers=1)
    assert auto.groupby("video").split.first().to_dict() == {"person0": "val", "person1": "train", "person2": "train"}


def test_prepare_faces_explains_bad_input(tmp_path):
    videos = _write_videos(tmp_path / "videos", n=1)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        pairs.prepare_faces(tmp_path / "nowhere", tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="no video files here"):
        pairs.prepare_faces(tmp_path, tmp_path / "c")
    with pytest.raises(ValueError, match="not given: bob"):
        pairs.prepare_faces(videos, tmp_path / "c", val=["bob.mp4"])
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(videos / "person0.mp4", other / "person0.mov")
    with pytest.raises(ValueError, match="unique.*person0"):
        pairs.prepare_faces([videos / "person0.mp4", other / "person0.mov"], tmp_path / "c")
    with pytest.raises(ValueError, match="fraction"):
        pairs.prepare_faces(videos, tmp_path / "c", val=1.5)


def test_a_cut_short_index_says_how_to_rebuild(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    header = ",".join(pairs.INDEX_COLUMNS)
    row = "train,original,000,0,0,a_hq.png,a_lq.png,a_mask.png,0,0,10,10"
    (cache / "index.csv").write_text(f"{header}\n{row}\n{row[:25]}\n")  # the writer died mid-row
    with pytest.raises(ValueError, match=r"index.csv: 1 row\(s\) are incomplete, the first on line 3.*rerun prepare"):
        pairs.load_index(cache)
    (cache / "index.csv").write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable pair index.*rerun prepare"):
        pairs.load_index(cache)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_killing_prepare_ends_its_workers(tree, tmp_path):
    """kill -9 of prepare's main process must not leave its pool running (a real process tree)."""
    code = (
        "from antiforge_lib.data import pairs\n"
        f"pairs.prepare_pairs({str(tree)!r}, {str(tmp_path / 'c')!r}, frames_per_video=16, size=32, workers=2, "
        "progress=False)"
    )
    main = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.time() + 60
        while len(_descendants(main.pid)) < 3 and time.time() < deadline:  # the forkserver and two workers
            time.sleep(0.2)
        pool = _descendants(main.pid)
        assert len(pool) >= 3, "the pool never started"
    finally:
        main.kill()
        main.wait()
    deadline = time.time() + 15
    while any(Path(f"/proc/{p}").exists() for p in pool) and time.time() < deadline:
        time.sleep(0.2)
    left = [p for p in pool if Path(f"/proc/{p}").exists() and "(Z)" not in Path(f"/proc/{p}/stat").read_text()]
    assert not left, f"processes {left} outlived prepare"


def test_prepare_says_whose_lock_it_waits_for(tree, tmp_path, capsys):
    out = tmp_path / "c"
    out.mkdir()
    with lock_held_elsewhere(out / ".lock", seconds=3) as holder:  # another prepare, for a moment
        index = pairs.prepare_pairs(tree, out, frames_per_video=2, size=32, workers=1, progress=False)
    assert f"waiting for process {holder.pid} on " in capsys.readouterr().err and len(index)
