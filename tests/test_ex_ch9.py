"""The Chapter 9 self-check accepts right answers and rejects plausible wrong ones."""

from conftest import rejects_naming_each_mistake, survives_broken_answers

from antiforge_lib import exercises as ex


def _verdicts(capsys):
    return capsys.readouterr().out


# Table 3 of the paper, typed independently of antiforge_lib.ablation (ACC, AUC, TAR@0.1%, TAR@0.01%).
_TABLE3 = {
    1: (94.36, 97.90, 94.74, 79.32),
    2: (94.33, 97.70, 95.87, 84.71),
    3: (94.46, 97.86, 96.18, 85.67),
    4: (98.93, 99.85, 99.82, 98.89),
    5: (94.71, 97.91, 96.69, 86.67),
    6: (94.85, 98.47, 96.71, 84.27),
    7: (95.04, 98.05, 97.16, 86.53),
    8: (95.16, 98.18, 97.28, 86.78),
    9: (95.30, 98.76, 97.64, 84.25),
    10: (95.21, 98.25, 96.93, 81.96),
    11: (95.38, 98.68, 97.59, 83.85),
}
_COL = {"ACC": 0, "AUC": 1, "TAR@0.1%": 2, "TAR@0.01%": 3}


def test_row_delta_check_accepts_the_library_and_a_typed_table(capsys):
    assert ex.check_row_delta(lambda p, a, b, m: p.loc[b, m] - p.loc[a, m])
    assert ex.check_row_delta(lambda p, a, b, m: _TABLE3[b][_COL[m]] - _TABLE3[a][_COL[m]])
    assert _verdicts(capsys).count("Correct") == 2


def test_rows_2_to_5_gain_082_tar_points():
    # Sec. 4.4 of the paper says "0.9"; Table 3 gives 96.69 - 95.87 = 0.82 (Chapter 4 notes the slip).
    assert ex.check_row_delta(lambda p, a, b, m: p.loc[b, m] - p.loc[a, m])
    assert abs((_TABLE3[5][2] - _TABLE3[2][2]) - 0.82) < 1e-9


def test_row_delta_check_names_the_mistake(capsys):
    wrong = {
        "sign is reversed": lambda p, a, b, m: p.loc[a, m] - p.loc[b, m],
        "keep the sign": lambda p, a, b, m: abs(p.loc[b, m] - p.loc[a, m]),
        "relative change": lambda p, a, b, m: 100 * (p.loc[b, m] - p.loc[a, m]) / p.loc[a, m],
        "iloc": lambda p, a, b, m: p.iloc[b][m] - p.iloc[a][m],
        "fraction": lambda p, a, b, m: (p.loc[b, m] - p.loc[a, m]) / 100,
    }
    rejects_naming_each_mistake(ex.check_row_delta, wrong, capsys)


def test_row_delta_check_survives_unfinished_and_broken_answers(capsys):
    survives_broken_answers([ex.check_row_delta], capsys)
