"""The exercise self-checks accept right answers and reject wrong ones, and the book's stubs get "not written yet"."""

import contextlib
import io

import nbformat
import pytest
import torch
from book_pages import chapters
from conftest import survives_broken_answers

from antiforge_lib import exercises, jpeg
from antiforge_lib.exercises._common import NOT_WRITTEN

STUB_CELLS = [
    pytest.param(cell.source, id=f"{path.stem}:{i}")
    for path in chapters()
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells)
    if cell.cell_type == "code" and "# your code here" in cell.source
]


def test_chapters_1_2_and_5_checks_survive_stubs_and_broken_answers(capsys):
    # The other chapters' checks are put through the same in their own test modules (tests/test_ex_ch*.py).
    modules = (exercises.ch01, exercises.ch02, exercises.ch05)
    survives_broken_answers([getattr(m, n) for m in modules for n in m.__all__], capsys)


@pytest.mark.parametrize("source", STUB_CELLS)
def test_the_books_stubs_raise_not_implemented_and_their_check_says_not_written(source):
    """Each exercise cell as shipped: the stub raises NotImplementedError, and the cell (the stub, then its check)
    runs without raising -- the book build executes it -- and prints the "not written yet" verdict."""
    assert "raise NotImplementedError" in source and "return None" not in source
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<stub cell>", "exec"), {"exercises": exercises})
    assert out.getvalue() == f"Not yet: {NOT_WRITTEN}\n"


def test_there_is_a_stub_cell_per_check():
    assert len(STUB_CELLS) == len(exercises.__all__)


def right_quantize(block, table):
    return jpeg.quantize_blocks(jpeg.block_dct(block - 128), table)


def test_quantize_block_check_accepts_reference(capsys):
    assert exercises.check_quantize_block(right_quantize)
    assert "Correct" in capsys.readouterr().out


def test_quantize_block_check_rejects_missing_level_shift(capsys):
    wrong = lambda b, t: jpeg.quantize_blocks(jpeg.block_dct(b), t)  # noqa: E731
    assert not exercises.check_quantize_block(wrong)
    assert "subtract 128" in capsys.readouterr().out


def test_quantize_block_check_rejects_truncation_and_exceptions():
    assert not exercises.check_quantize_block(lambda b, t: torch.trunc(jpeg.block_dct(b - 128) / t))
    assert not exercises.check_quantize_block(lambda b, t: 1 / 0)


def test_zigzag_check():
    assert exercises.check_zigzag(jpeg.zigzag)
    assert not exercises.check_zigzag(lambda: list(range(64)))
    assert not exercises.check_zigzag(lambda: [0] * 64)


def test_band_zero_fraction_check():
    assert exercises.check_band_zero_fraction(lambda x, q: jpeg.coefficient_stats(x, q)["high"])
    assert not exercises.check_band_zero_fraction(lambda x, q: jpeg.coefficient_stats(x, q)["mid"])


def test_checks_give_a_verdict_on_unusable_returns(capsys):
    assert not exercises.check_zigzag(lambda: "not a list")
    assert not exercises.check_quantize_block(lambda b, t: torch.zeros(4, 4))
    assert not exercises.check_band_zero_fraction(lambda x, q: [0.1, 0.2])
    out = capsys.readouterr().out
    assert out.count("Not yet") == 3 and "Traceback" not in out


def test_chapter2_checks_accept_right_and_reject_wrong_answers(capsys):
    from antiforge_lib.data import faces, pairs

    assert exercises.check_face_crop_box(lambda b, h, w: faces.clamp_box(faces.square_box(b, 1.3), h, w))
    assert not exercises.check_face_crop_box(lambda b, h, w: faces.clamp_box(faces.square_box(b, 1.0), h, w))
    assert not exercises.check_face_crop_box(lambda b, h, w: tuple(int(v) for v in faces.square_box(b, 1.3)))
    assert exercises.check_binarize_mask(lambda g: g / 255 > 0.1)
    capsys.readouterr()
    assert not exercises.check_binarize_mask(lambda g: g / 255 > 0.2)  # the authors' code uses 0.2
    assert "authors' public code" in capsys.readouterr().out
    assert not exercises.check_binarize_mask(lambda g: g > 0.1)  # forgot to divide by 255
    assert "authors'" not in capsys.readouterr().out
    assert not exercises.check_binarize_mask(lambda g: g > 0)
    assert exercises.check_frame_indices(pairs.frame_indices)
    assert not exercises.check_frame_indices(lambda n, k: list(range(min(n, k))))


def test_chapter3_and_5_checks():
    import torch.nn.functional as F

    from antiforge_lib import losses

    def right(head, att, tail, x):
        v = head(x)
        m = att(v)
        return tail(v * m), m, v

    assert exercises.check_branch_forward(right)
    assert not exercises.check_branch_forward(lambda h, a, t, x: (t(h(x)), a(h(x)), h(x)))  # no masking
    assert not exercises.check_branch_forward(lambda h, a, t, x: t(h(x)))
    assert exercises.check_attention_loss(lambda m, y: F.binary_cross_entropy(m, y))
    assert not exercises.check_attention_loss(lambda m, y: F.binary_cross_entropy(m, y, reduction="sum"))
    assert not exercises.check_attention_loss(lambda m, y: (y * m.log() + (1 - y) * (1 - m).log()).mean())
    assert exercises.check_attention_transfer(losses.attention_transfer_loss)
    assert not exercises.check_attention_transfer(lambda a, b: (a - b).flatten(1).norm(dim=1).mean())
    assert not exercises.check_attention_transfer(
        lambda a, b: (
            (a / a.flatten(1).norm(dim=1).view(-1, 1, 1, 1) - b / b.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
            .flatten(1)
            .norm(dim=1)
            .mean()
        )
    )  # right on random maps, but NaN for zero maps
