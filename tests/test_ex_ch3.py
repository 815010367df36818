"""The Chapter 3 self-check of Exercise 3.2 accepts the right answer and rejects plausible wrong ones."""

from conftest import survives_broken_answers

from antiforge_lib.exercises import check_gradient_reach

# Written out by hand, independently of the check's backward pass.
RIGHT = {"c_hq": {"head_hq", "attention_hq", "tail"}, "c_lq": {"head_lq", "attention_lq", "tail"}}


def test_gradient_reach_check_accepts_the_right_answer(capsys):
    assert check_gradient_reach(lambda out: RIGHT[out])
    assert check_gradient_reach(lambda out: sorted(RIGHT[out]))  # a list is fine too
    assert capsys.readouterr().out.count("Correct") == 2


def test_gradient_reach_check_rejects_wrong_answers(capsys):
    cases = {
        "both heads": (lambda out: RIGHT[out] | {"head_hq", "head_lq"}, "does not reach ['head_"),
        "no attention": (lambda out: RIGHT[out] - {f"attention_{out[2:]}"}, "multiplies V before the tail"),
        "no tail": (lambda out: RIGHT[out] - {"tail"}, "the tail computes"),
        "swapped branches": (lambda out: RIGHT["c_lq" if out == "c_hq" else "c_hq"], "does not reach"),
        "everything": (lambda out: {"head_hq", "head_lq", "attention_hq", "attention_lq", "tail"}, "does not reach"),
        "tail only": (lambda out: {"tail"}, "also reaches"),
    }
    for name, (fn, hint) in cases.items():
        assert not check_gradient_reach(fn), name
        out = capsys.readouterr().out
        assert out.startswith("Not yet") and hint in out, (name, out)


def test_gradient_reach_check_gives_a_verdict_on_stubs_and_crashes(capsys):
    survives_broken_answers([check_gradient_reach], capsys)
    assert not check_gradient_reach(lambda out: None)
    assert not check_gradient_reach(lambda out: 1 / 0)
    assert not check_gradient_reach(lambda out: "tail")
    assert not check_gradient_reach(lambda out: {"block7"})
    out = capsys.readouterr().out
    assert out.count("Not yet") == 4 and "Traceback" not in out and "not parts of the net" in out
