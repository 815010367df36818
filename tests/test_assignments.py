"""The classroom assignments' graders (antiforge_lib.exercises.a1_losses, .a2_ablation, .grader) and autograders
(book/assignments/).

Right answers -- the library's reference implementations and hand-written ones -- pass; plausible wrong answers
fail with a message that names the mistake; the autograder files pass a right submission and fail a wrong one.
"""

import json
import os
import textwrap
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import torch
import torch.nn.functional as F

from antiforge_lib import losses
from antiforge_lib.ablation import TABLE3, format_ablation, load_ablation
from antiforge_lib.exercises import a1_losses as A1
from antiforge_lib.exercises import a2_ablation as A2
from antiforge_lib.exercises import assignments
from antiforge_lib.exercises import grader as G
from antiforge_lib.learner import TrainConfig, TwoBranchLoss

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = ROOT / "book" / "assignments"


def _out(capsys) -> str:
    return capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------
# Assignment 1: metric loss


def right_metric(c, is_fake, r_minus=0.1, r_plus=18.0):
    norm = c.norm(dim=1)
    fake = is_fake == 1
    return torch.where(fake, F.relu(r_plus - norm), F.relu(norm - r_minus)).mean()


def test_metric_grader_accepts_the_library_and_a_hand_written_answer(capsys):
    assert A1.grade_metric_loss(losses.metric_loss)
    assert A1.grade_metric_loss(right_metric)
    out = _out(capsys)
    assert out.count("Correct") == 2 and "passes all 9 checks" in out


def _stub(*args, **kwargs):
    raise NotImplementedError  # the templates' stub, as nbgrader's


NOT_IMPLEMENTED = "is not implemented yet -- replace `raise NotImplementedError` in its # YOUR CODE HERE region"


@pytest.mark.parametrize(
    "grade, name",
    [(A1.grade_metric_loss, "metric_loss"), (A1.grade_attention_transfer_loss, "attention_transfer_loss")],
)
def test_graders_report_a_stub_as_not_implemented_without_raising(grade, name, capsys):
    assert not grade(_stub)
    assert _out(capsys) == f"Not yet: {name} {NOT_IMPLEMENTED} with your code.\n"
    assert not grade(lambda *a: G.not_implemented(name))  # the older templates' placeholder: the same verdict
    assert _out(capsys) == f"Not yet: {name} {NOT_IMPLEMENTED} with your code.\n"


def test_graders_report_none_and_a_real_not_implemented_error_as_mistakes(capsys):
    assert not A1.grade_metric_loss(lambda c, y, rm=0.1, rp=18.0: None)
    assert "returned None" in _out(capsys)

    def torch_lacks_it(*args):
        raise NotImplementedError("aten::foo is not implemented for 'Half'")  # as torch raises: not a stub

    assert not A1.grade_attention_transfer_loss(torch_lacks_it)
    out = _out(capsys)
    assert "raised NotImplementedError: aten::foo" in out and "not implemented yet" not in out


def test_the_shipped_template_is_graded_not_implemented(tmp_path, capsys):
    """The %%writefile cell of a1_losses.ipynb, as shipped: both functions get the not-implemented verdict."""
    nb = nbformat.read(ASSIGNMENTS / "a1_losses.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.source.startswith("%%writefile student_losses.py")]
    path = tmp_path / "student_losses.py"
    path.write_text(cell.source.split("\n", 1)[1])
    student = G.load_student_module(path)
    assert not A1.grade_metric_loss(student.metric_loss)
    assert not A1.grade_attention_transfer_loss(student.attention_transfer_loss)
    out = _out(capsys).splitlines()
    assert out == [
        f"Not yet: {n} {NOT_IMPLEMENTED} with your code." for n in ("metric_loss", "attention_transfer_loss")
    ]


def test_the_old_module_still_exports_every_grader():
    for module in (G, A1, A2):
        for name in module.__all__:
            assert getattr(assignments, name) is getattr(module, name), name


def _hinge(c, y, rm, rp):
    norm = c.norm(dim=1)
    return torch.where(y == 1, F.relu(rp - norm), F.relu(norm - rm))


WRONG_METRIC = {
    # name: (function, words the verdict must contain)
    "sum": (lambda c, y, rm=0.1, rp=18.0: _hinge(c, y, rm, rp).sum(), "summed"),
    "squared norm": (
        lambda c, y, rm=0.1, rp=18.0: torch.where(
            y == 1, F.relu(rp - c.pow(2).sum(1)), F.relu(c.pow(2).sum(1) - rm)
        ).mean(),
        "squared norm",
    ),
    "radii swapped": (lambda c, y, rm=0.1, rp=18.0: _hinge(c, y, rp, rm).mean(), "radii are swapped"),
    "no mean": (lambda c, y, rm=0.1, rp=18.0: _hinge(c, y, rm, rp), "forget the mean"),
    "Python float": (lambda c, y, rm=0.1, rp=18.0: _hinge(c, y, rm, rp).mean().item(), "not float"),
    "item, then tensor": (
        lambda c, y, rm=0.1, rp=18.0: torch.tensor(_hinge(c, y, rm, rp).mean().item()),
        "no gradient reaches c",
    ),
    "wrong default radius": (lambda c, y, rm=0.01, rp=18.0: _hinge(c, y, rm, rp).mean(), "defaults"),
    "1 - label fails for bool": (
        lambda c, y, rm=0.1, rp=18.0: (y * F.relu(rp - c.norm(dim=1)) + (1 - y) * F.relu(c.norm(dim=1) - rm)).mean(),
        "is_fake == 1",
    ),
}


@pytest.mark.parametrize("name", WRONG_METRIC)
def test_metric_grader_names_the_mistake(name, capsys):
    fn, words = WRONG_METRIC[name]
    assert not A1.grade_metric_loss(fn)
    out = _out(capsys)
    assert out.startswith("Not yet: metric_loss fails the case") and words in out, out
    assert "Traceback" not in out


def test_metric_grader_catches_separate_means_and_in_place_changes(capsys):
    def separate(c, y, rm=0.1, rp=18.0):
        h = _hinge(c, y, rm, rp)
        return h[y == 0].mean() + h[y == 1].mean()

    assert not A1.grade_metric_loss(separate)
    assert "separately" in _out(capsys)

    def in_place(c, y, rm=0.1, rp=18.0):
        out = right_metric(c, y, rm, rp)
        c.data.mul_(2)  # a right value, but the model's output is changed
        return out

    assert not A1.grade_metric_loss(in_place)
    assert "in place" in _out(capsys)


def test_metric_grader_edge_cases_alone():
    """The cases after Chapter 4's check catch what it cannot: e.g. NaN on a batch with one class only."""
    cases = dict(A1._metric_cases(lambda c, y, rm=0.1, rp=18.0: _hinge(c, y, rm, rp)[y == 1].mean()))
    with pytest.raises(G._Fail, match="separately"):
        cases["all-real batch"]()
    cases = dict(A1._metric_cases(right_metric))
    for case in cases.values():
        case()  # a right answer passes each case on its own


# ---------------------------------------------------------------------------------------------------------------
# Assignment 1: attention transfer loss


def right_transfer(m_hq, m_lq):
    u_hq = F.normalize(m_hq.detach().flatten(1), dim=1, eps=1e-8)
    u_lq = F.normalize(m_lq.flatten(1), dim=1, eps=1e-8)
    return (u_hq - u_lq).norm(dim=1).mean()


def _unit(m):
    return m.flatten(1) / m.flatten(1).norm(dim=1, keepdim=True).clamp(min=1e-8)


def test_transfer_grader_accepts_the_library_and_a_hand_written_answer(capsys):
    assert A1.grade_attention_transfer_loss(losses.attention_transfer_loss)
    assert A1.grade_attention_transfer_loss(right_transfer)
    assert A1.grade_attention_transfer_loss(  # + eps instead of max(norm, eps) is fine too
        lambda a, b: (
            (
                a.detach().flatten(1) / (a.detach().flatten(1).norm(dim=1, keepdim=True) + 1e-8)
                - b.flatten(1) / (b.flatten(1).norm(dim=1, keepdim=True) + 1e-8)
            )
            .norm(dim=1)
            .mean()
        )
    )
    out = _out(capsys)
    assert out.count("Correct") == 3 and "passes all 7 checks" in out


WRONG_TRANSFER = {
    "not normalised": (lambda a, b: (a - b).flatten(1).norm(dim=1).mean(), "forget to normalise"),
    "whole-batch norm": (
        lambda a, b: (a.detach().flatten(1) / a.norm() - b.flatten(1) / b.norm()).norm(dim=1).mean(),
        "whole batch",
    ),
    "sum over batch": (lambda a, b: (_unit(a.detach()) - _unit(b)).norm(dim=1).sum(), "summed over the batch"),
    "squared": (lambda a, b: (_unit(a.detach()) - _unit(b)).pow(2).sum(1).mean(), "square the distance"),
    "mse": (lambda a, b: F.mse_loss(_unit(a.detach()), _unit(b)), "F.mse_loss"),
    "per-sample vector": (lambda a, b: (_unit(a.detach()) - _unit(b)).norm(dim=1), "forget the mean"),
    "no eps": (
        lambda a, b: (
            (
                a.detach().flatten(1) / a.detach().flatten(1).norm(dim=1, keepdim=True)
                - b.flatten(1) / b.flatten(1).norm(dim=1, keepdim=True)
            )
            .norm(dim=1)
            .mean()
        ),
        "eps",
    ),
    "not detached": (lambda a, b: (_unit(a) - _unit(b)).norm(dim=1).mean(), "m_hq.detach()"),
}


@pytest.mark.parametrize("name", WRONG_TRANSFER)
def test_transfer_grader_names_the_mistake(name, capsys):
    fn, words = WRONG_TRANSFER[name]
    assert not A1.grade_attention_transfer_loss(fn)
    out = _out(capsys)
    assert out.startswith("Not yet: attention_transfer_loss fails the case") and words in out, out


# ---------------------------------------------------------------------------------------------------------------
# Assignment 1: training with the student's functions


def _pred(b=6, d=8, attention=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = lambda: torch.randn(b, d, generator=g) * 10  # noqa: E731
    m = (lambda: torch.rand(b, 1, 4, 4, generator=g)) if attention else (lambda: None)  # noqa: E731
    return SimpleNamespace(c_hq=c(), c_lq=c(), m_hq=m(), m_lq=m())


@pytest.mark.parametrize(
    "overrides", [{}, {"metric": False}, {"transfer": False}, {"attention": False}, {"lambda_at": 0.5}]
)
def test_student_loss_with_the_library_functions_equals_two_branch_loss(overrides):
    cfg = TrainConfig.preset("demo", **overrides)
    pred = _pred(attention=cfg.attention)
    mask = (torch.rand(6, 1, 16, 16) > 0.5).float() * torch.tensor([0, 1, 1, 0, 1, 0.0]).view(6, 1, 1, 1)
    label = torch.tensor([0, 1, 1, 0, 1, 0])
    ref, ours = TwoBranchLoss(cfg), A1.StudentTwoBranchLoss(cfg)
    want, got = ref(pred, mask, label), ours(pred, mask, label)
    assert torch.allclose(got, want, rtol=1e-6)
    assert ref.parts.keys() == ours.parts.keys()
    for k in ref.parts:
        assert torch.allclose(ours.parts[k], ref.parts[k], rtol=1e-6, atol=1e-7), k


def test_student_loss_uses_the_functions_given():
    cfg = TrainConfig.preset("demo")
    pred, mask, label = _pred(), torch.zeros(6, 1, 16, 16), torch.tensor([0, 1, 1, 0, 1, 0])
    base = A1.StudentTwoBranchLoss(cfg)(pred, mask, label)
    calls = []

    def metric(c, y, rm, rp):
        calls.append(("metric", rm, rp))
        return losses.metric_loss(c, y, rm, rp) + 1

    def transfer(a, b):
        calls.append(("transfer",))
        return losses.attention_transfer_loss(a, b) + 1

    loss = A1.StudentTwoBranchLoss(cfg, metric_loss=metric, attention_transfer_loss=transfer)
    total = loss(pred, mask, label)
    assert torch.allclose(total, base + 2 + cfg.lambda_at)
    assert calls == [("metric", 0.1, 18.0), ("metric", 0.1, 18.0), ("transfer",)]
    assert loss.parts["total"].item() == pytest.approx(total.item())


def test_yours_if_correct(capsys):
    assert A1.yours_if_correct(right_metric, True, losses.metric_loss) is right_metric
    assert "YOUR function" in _out(capsys)
    assert A1.yours_if_correct(right_metric, False, losses.metric_loss) is losses.metric_loss
    assert "library's reference" in _out(capsys)


def test_load_student_module_reads_the_file_afresh(tmp_path):
    path = tmp_path / "student_x.py"
    path.write_text("VALUE = 1\n")
    assert G.load_student_module(path).VALUE == 1
    path.write_text("VALUE = 2\n")
    assert G.load_student_module(path).VALUE == 2
    with pytest.raises(FileNotFoundError):
        G.load_student_module(tmp_path / "missing.py")
    assert repr(G.not_implemented("f")) == "<f: not implemented yet>"


# ---------------------------------------------------------------------------------------------------------------
# Assignment 2: the choice of rows


@pytest.mark.parametrize(
    "rows, factor",
    [
        ([7, 8], "transfer"),
        ([1, 2], "loss"),
        ([2, 3], "attention"),
        ([2, 5], "network"),
        ([5, 6], "gan"),
        ([3, 4], "image quality"),
        ([9, 10], "HQ training data"),
    ],
)
def test_choice_of_one_factor_passes(rows, factor, capsys):
    assert A2.row_differences(*rows) == [factor]
    assert A2.grade_ablation_choice(rows)
    assert factor in _out(capsys)


def test_choice_grader_rejects_confounded_and_degenerate_choices(capsys):
    assert not A2.grade_ablation_choice([2, 9])
    out = _out(capsys)
    assert "network, attention, transfer, gan" in out and "1 (loss), 3 (attention), 5 (network)" in out
    assert A2.grade_ablation_choice([5, 6, 7])  # 6 and 7 differ in two factors, but each pairs with 5
    _out(capsys)
    for rows, words in (([7], "at least two"), ([7, 7], "at least two"), ([7, 12], "rows are numbered 1 to 11")):
        assert not A2.grade_ablation_choice(rows)
        assert words in _out(capsys)


# ---------------------------------------------------------------------------------------------------------------
# Assignment 2: the results


def _write_results(out_dir: Path, rows, seeds=(0,)):
    """Result files as run_ablation writes them (made-up metrics), to be read back with load_ablation."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for n in rows:
        row = TABLE3[n]
        for seed in seeds:
            rec = {
                "format": 1,
                "row": {k: v for k, v in asdict(row).items() if k != "paper"},
                "seed": seed,
                "config": TrainConfig.preset("demo", seed=seed).to_dict(),
                "data": {"variant": row.variant, "n_pairs": {"test": 96, "train": 48, "val": 24}},
                "eval_split": "test",
                "metrics": {
                    "ACC": 0.5 + 0.01 * n,
                    "AUC": 0.6,
                    "TAR@0.1%": 0.1,
                    "TAR@0.01%": 0.1,
                    "PBCA": 0.8 if row.attention else None,
                },
                "paper": row.paper.by_metric(),
                "train_seconds": 1.0,
            }
            (out_dir / f"row{n:02d}_seed{seed}.json").write_text(json.dumps(rec))


def test_result_grader_accepts_complete_results(tmp_path, capsys):
    _write_results(tmp_path, [5, 7, 8], seeds=(0, 1))
    df = load_ablation(tmp_path)
    assert A2.grade_ablation_result(df, [7, 8], ["AUC", "ACC", "PBCA"])
    assert "complete (2 seeds per row)" in _out(capsys)
    assert A2.grade_ablation_result(df, [5, 7], "ACC")  # a single metric name is fine too


def test_result_grader_names_what_is_missing(tmp_path, capsys):
    _write_results(tmp_path, [5, 7])
    df = load_ablation(tmp_path)
    cases = [
        ((df, [7, 8], ["AUC"]), "row(s) [8] are not in the results"),
        ((df, [5, 7], ["AUC", "PBCA"]), "Row 5 has no attention map"),
        ((df, [5, 7], ["F1"]), "unknown metric"),
        ((df, [5, 7], []), "at least one metric"),
        ((format_ablation(df), [5, 7], ["AUC"]), "format_ablation"),
        ((df.to_dict(), [5, 7], ["AUC"]), "not dict"),
    ]
    for args, words in cases:
        assert not A2.grade_ablation_result(*args)
        out = _out(capsys)
        assert out.startswith("Not yet") and words in out, (words, out)


# ---------------------------------------------------------------------------------------------------------------
# Assignment 2: the write-up


def _answered(path: Path, words: int = 50) -> Path:
    nb = nbformat.read(ASSIGNMENTS / "a2_ablation.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and A2.ANSWER_PLACEHOLDER in cell.source and "### W" in cell.source:
            cell.source = cell.source.replace(A2.ANSWER_PLACEHOLDER, " ".join(["because"] * words))
    nbformat.write(nb, path)
    return path


def test_writeup_grader_on_the_shipped_template_and_an_answered_copy(tmp_path, capsys):
    assert not A2.grade_writeup(ASSIGNMENTS / "a2_ablation.ipynb")
    out = _out(capsys)
    assert all(f"{t} (0 of at least" in out for t in A2.WRITEUP_SECTIONS), out
    assert A2.grade_writeup(_answered(tmp_path / "a2_ablation.ipynb"))
    assert "all 4 write-up sections" in _out(capsys)
    assert not A2.grade_writeup(_answered(tmp_path / "short.ipynb", words=12))
    assert "W4. Reasoning (12 of at least 40 words)" in _out(capsys)


def test_writeup_grader_counts_answers_in_added_cells_and_needs_the_headings(tmp_path, capsys):
    nb = nbformat.read(ASSIGNMENTS / "a2_ablation.ipynb", as_version=4)
    heads = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("### W")]
    for i in reversed(heads):  # answers in a new cell after each section's cell
        nb.cells.insert(i + 1, nbformat.v4.new_markdown_cell("word " * 60))
    nbformat.write(nb, tmp_path / "added.ipynb")
    assert A2.grade_writeup(tmp_path / "added.ipynb")
    del nb.cells[heads[0]]
    nbformat.write(nb, tmp_path / "no_heading.ipynb")
    assert not A2.grade_writeup(tmp_path / "no_heading.ipynb")
    assert "W1. Hypothesis" in _out(capsys).splitlines()[-1]
    assert not A2.grade_writeup(tmp_path / "missing.ipynb")
    assert "cannot read" in _out(capsys)


# ---------------------------------------------------------------------------------------------------------------
# The autograder files, run as an instructor would (in-process pytest on a student's folder)


def _autograde(test_file: str, student_dir: Path, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setenv("STUDENT_DIR", str(student_dir))
    _out(capsys)
    code = pytest.main(["-q", "-p", "no:cacheprovider", "-rA", str(ASSIGNMENTS / test_file)])
    return int(code), _out(capsys)


RIGHT_LOSSES = """
import torch
import torch.nn.functional as F


def metric_loss(c, is_fake, r_minus=0.1, r_plus=18.0):
    norm = torch.linalg.vector_norm(c, dim=1)
    return torch.where(is_fake == 1, F.relu(r_plus - norm), F.relu(norm - r_minus)).mean()


def attention_transfer_loss(m_hq, m_lq):
    u_hq = F.normalize(m_hq.detach().flatten(1), dim=1, eps=1e-8)
    u_lq = F.normalize(m_lq.flatten(1), dim=1, eps=1e-8)
    return (u_hq - u_lq).norm(dim=1).mean()
"""


def test_autograder_1(tmp_path, monkeypatch, capsys):
    (tmp_path / "student_losses.py").write_text(RIGHT_LOSSES)
    code, out = _autograde("test_assignment1.py", tmp_path, monkeypatch, capsys)
    assert code == 0 and "3 passed" in out, out

    wrong = RIGHT_LOSSES.replace(").mean()\n\n\ndef attention", ").sum()\n\n\ndef attention")
    wrong = "from antiforge_lib.losses import pair_loss\n" + wrong
    (tmp_path / "student_losses.py").write_text(wrong)
    code, out = _autograde("test_assignment1.py", tmp_path, monkeypatch, capsys)
    assert code == 1 and "2 failed, 1 passed" in out, out
    assert "you summed the hinges" in out and "imports antiforge_lib.losses" in out

    (tmp_path / "student_losses.py").unlink()
    code, out = _autograde("test_assignment1.py", tmp_path, monkeypatch, capsys)
    assert code == 1 and "student_losses.py not found" in out, out


def test_autograder_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "student_ablation.py").write_text(
        textwrap.dedent(
            """
            ROWS = [7, 8]
            METRICS = ["AUC", "PBCA"]
            OUT_DIR = "results"
            """
        )
    )
    _write_results(tmp_path / "results", [7, 8])
    _answered(tmp_path / "a2_ablation.ipynb")
    code, out = _autograde("test_assignment2.py", tmp_path, monkeypatch, capsys)
    assert code == 0 and "3 passed" in out, out

    (tmp_path / "student_ablation.py").write_text('ROWS = [2, 9]\nMETRICS = ["AUC"]\nOUT_DIR = "results"\n')
    os.remove(tmp_path / "a2_ablation.ipynb")
    code, out = _autograde("test_assignment2.py", tmp_path, monkeypatch, capsys)
    assert code == 1 and "3 failed" in out, out
    assert "more than one factor" in out and "row(s) [2, 9] are not in the results" in out and "cannot read" in out


def test_repository_run_does_not_collect_the_autograders(pytestconfig):
    # They need a student's files; a plain `pytest` collects only testpaths.
    assert pytestconfig.getini("testpaths") == ["tests"]
    assert {p.name for p in ASSIGNMENTS.glob("test_*.py")} == {"test_assignment1.py", "test_assignment2.py"}


def test_a_stub_met_inside_a_chapter_check_is_not_implemented_too():
    from antiforge_lib.exercises import check_attention_transfer, check_metric_loss

    for check in (check_metric_loss, check_attention_transfer):
        with pytest.raises(G._NotYet):
            G._chapter_check(check, _stub)
        with pytest.raises(G._Fail, match="returned None"):
            G._chapter_check(check, lambda *a: None)
