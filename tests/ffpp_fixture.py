"""A tiny FaceForensics++-shaped tree, written by the tests from the embedded face photo."""

import json
from pathlib import Path

import numpy as np

from antiforge_lib.data.faces import detect_face
from antiforge_lib.data.sample import self_blend_video
from antiforge_lib.data.video import encode_video
from antiforge_lib.samples import face_image

SPLITS = {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"]]}
FRAMES = 8
NO_FACE = {"005": [6, 7]}  # frames of real video 005 (and of fake 005_004) with the face hidden


def real_clip(k: int) -> np.ndarray:
    photo = np.asarray(face_image(crop=False).resize((320, 320)))
    x = [50 + 2 * k + t for t in range(FRAMES)]  # a slow pan, different per video
    clip = np.stack([photo[t // 2 : t // 2 + 160, x[t] : x[t] + 160] for t in range(FRAMES)])
    clip = clip.copy()
    for t in NO_FACE.get(f"{k:03d}", []):
        clip[t] = 128
    return clip


def write_tree(root: Path, method: str = "SelfBlend") -> dict:
    """Reals 000-005 (one pair per split) and their fakes at c0/c23/c40, with masks. Returns the reals."""
    rng = np.random.default_rng(0)
    reals = {f"{k:03d}": real_clip(k) for k in range(6)}
    for vid, frames in reals.items():
        for lv, sub in (("c0", "raw"), ("c23", "c23"), ("c40", "c40")):
            encode_video(frames, root / "original_sequences/youtube" / sub / "videos" / f"{vid}.mp4", lv)
    for pairs in SPLITS.values():
        for a, b in pairs:
            for t, s in ((a, b), (b, a)):
                boxes = np.array([detect_face(f) or (np.nan,) * 4 for f in reals[t]], dtype=float)
                fake, mask = self_blend_video(reals[t], boxes, rng)
                for lv, sub in (("c0", "raw"), ("c23", "c23"), ("c40", "c40")):
                    encode_video(fake, root / "manipulated_sequences" / method / sub / "videos" / f"{t}_{s}.mp4", lv)
                grey = np.repeat((mask * 255).round().astype(np.uint8)[..., None], 3, axis=3)
                encode_video(grey, root / "manipulated_sequences" / method / "masks/videos" / f"{t}_{s}.mp4", "c0")
    (root / "splits").mkdir(parents=True, exist_ok=True)
    for split, pairs in SPLITS.items():
        (root / "splits" / f"{split}.json").write_text(json.dumps(pairs))
    return reals
