"""antiforge_lib.data.video: PyAV/libx264 round trips checked against the input frames."""

import numpy as np
import pytest

from antiforge_lib.data import video
from antiforge_lib.jpeg import psnr
from antiforge_lib.samples import face_tensor


def clip(t=12, size=64):
    """A real face drifting across the frame: smooth content x264 can predict."""
    face = (face_tensor(size=size + 16)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return np.stack([face[i % 8 : i % 8 + size, i % 16 : i % 16 + size] for i in range(t)])


def _psnr(a, b):
    import torch

    return psnr(torch.from_numpy(a).float() / 255, torch.from_numpy(b).float() / 255)


def test_c0_is_lossless_and_file_round_trip(tmp_path):
    frames = clip()
    path = video.encode_video(frames, tmp_path / "v" / "000.mp4", "c0")
    np.testing.assert_array_equal(video.read_video(path), frames)
    info = video.video_info(path)
    assert (info.frames, info.height, info.width) == (12, 64, 64)
    assert not list(tmp_path.rglob("*.part")), "temporary file left behind"


def test_crf40_smaller_and_worse_than_crf23():
    frames = clip()
    hq, size_hq = video.h264_roundtrip(frames, "c23", return_size=True)
    lq, size_lq = video.h264_roundtrip(frames, "c40", return_size=True)
    assert hq.shape == lq.shape == frames.shape
    assert size_lq < size_hq
    assert _psnr(lq, frames) < _psnr(hq, frames) < float("inf")


def test_read_selected_frames(tmp_path):
    frames = clip()
    path = video.encode_video(frames, tmp_path / "a.mp4", "c0")
    got = video.read_video(path, indices=[9, 0, 4])
    np.testing.assert_array_equal(got, frames[[0, 4, 9]])
    with pytest.raises(video.VideoError, match="ends before"):
        video.read_video(path, indices=[50])


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    with pytest.raises(video.VideoError, match="broken.mp4"):
        video.read_video(bad)
    with pytest.raises(video.VideoError, match="broken.mp4"):
        video.video_info(bad)
    with pytest.raises(video.VideoError, match="no such video"):
        video.read_video(tmp_path / "absent.mp4")


def test_bad_arguments():
    with pytest.raises(ValueError, match="c0"):
        video.h264_roundtrip(clip(), "c99")
    with pytest.raises(ValueError, match="even"):
        video.h264_roundtrip(clip(size=63), "c23")
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        video.h264_roundtrip(np.zeros((4, 8, 8), np.uint8), "c23")
