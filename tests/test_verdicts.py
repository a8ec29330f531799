"""Every verdict of ``workflows.verdicts`` at its thresholds, and their shared HTML (no Qt)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from napari_cebra.workflows import controls, recipe
from napari_cebra.workflows.verdicts import (
    CONTROL_GOF_LIMIT_BITS,
    LATE_DROP_LIMIT_BITS,
    REAL_MARGIN_BITS,
    THRESHOLDS,
    check,
    consistency_check,
    consistency_reading,
    control_verdict,
    decoding_check,
    gof_checks,
    gof_reading,
    grid_check,
    late_gof_rise,
    mean_consistency,
    overall_verdict,
)

NAN = float("nan")


@dataclass
class Scores:
    gof_train: float
    gof_valid: float | None
    history: np.ndarray


def _flat(n_steps: int = 50, value: float = 1.0) -> np.ndarray:
    return np.full(n_steps, value)


def _rising(rise: float) -> np.ndarray:
    """50 steps whose last fifth is ``rise`` bits above the fifth before it."""
    return np.r_[np.zeros(40), np.full(10, rise)]


def test_thresholds_are_the_recipes_and_the_controls():
    assert recipe.THRESHOLDS is THRESHOLDS
    assert controls.CONTROL_GOF_LIMIT_BITS == CONTROL_GOF_LIMIT_BITS == 0.1
    assert THRESHOLDS["gof_min_bits"] == 0.1 and THRESHOLDS["overfit_gap_bits"] == 0.3
    assert THRESHOLDS["consistency_train_pass"] == 0.9
    assert THRESHOLDS["consistency_train_warn"] == 0.7
    assert LATE_DROP_LIMIT_BITS == 0.05


# ---------------------------------------------------------------------------------- late rise


def test_late_gof_rise_compares_the_last_two_fifths():
    assert late_gof_rise(np.ones(9)) == 0.0  # fewer than 10 steps
    assert late_gof_rise(np.r_[np.zeros(8), 1.0, 3.0]) == 2.0  # fifths of 2 steps: [0, 0] [1, 3]
    assert late_gof_rise(_rising(0.25)) == 0.25
    assert late_gof_rise(np.r_[np.full(90, 5.0), np.arange(10.0)]) == pytest.approx(4.75 - 5.0)
    # 12 steps: fifths of 2 steps, the first 2 steps are ignored
    assert late_gof_rise([100.0, 100.0] + [0.0] * 8 + [1.0, 1.0]) == 1.0


# ------------------------------------------------------------------------------- GoF reading


def test_gof_reading_fails_below_the_minimum_and_names_the_bits():
    lines = gof_reading(Scores(0.09, 0.08, _flat(value=0.09)))
    assert len(lines) == 1 and lines[0][0] == "fail"
    assert "0.09 bits on the training part" in lines[0][1]


def test_gof_reading_passes_at_the_minimum():
    verdicts = [verdict for verdict, _ in gof_reading(Scores(0.1, 0.1, _flat(value=0.1)))]
    assert verdicts == ["pass"]


def test_gof_reading_warns_above_the_gap_limit_only():
    at_limit = gof_reading(Scores(0.5, 0.2, _flat()))  # 0.5 - 0.2 == 0.3 exactly
    assert [verdict for verdict, _ in at_limit] == ["pass"]
    assert "0.50 bits on the training part and 0.20 bits on held-out" in at_limit[0][1]
    above = gof_reading(Scores(0.51, 0.2, _flat()))
    assert [verdict for verdict, _ in above] == ["warn"]
    assert "Overfitting" in above[0][1] and "gap 0.31 > 0.3 bits" in above[0][1]


def test_gof_reading_warns_when_held_out_frames_fall_below_the_minimum():
    lines = gof_reading(Scores(0.15, 0.05, _flat()))
    assert lines == [("warn", lines[0][1])]
    assert "Only 0.05 bits on held-out frames (< 0.1 bits)" in lines[0][1]


def test_gof_reading_without_validation_informs_and_passes():
    lines = gof_reading(Scores(2.0, None, _flat(value=2.0)))
    assert [verdict for verdict, _ in lines] == ["pass", "info"]
    assert "generalisation is not judged" in lines[0][1] and "2.00 bits" in lines[0][1]
    assert "No validation part" in lines[1][1]


def test_gof_reading_late_rise_is_info_without_a_gap_and_warn_with_one():
    rising = _rising(0.25)
    lines = gof_reading(Scores(2.0, 1.9, rising))
    assert [verdict for verdict, _ in lines] == ["pass", "info"]
    assert "+0.25 bits over the last fifth" in lines[1][1] and "more iterations" in lines[1][1]
    lines = gof_reading(Scores(2.0, 1.0, rising))
    assert [verdict for verdict, _ in lines] == ["warn", "warn"]
    assert "late gain is overfitting" in lines[1][1]


def test_gof_reading_late_rise_at_the_limit_is_not_mentioned():
    assert late_gof_rise(_rising(LATE_DROP_LIMIT_BITS)) == LATE_DROP_LIMIT_BITS
    assert [v for v, _ in gof_reading(Scores(2.0, 1.9, _rising(LATE_DROP_LIMIT_BITS)))] == ["pass"]
    assert [v for v, _ in gof_reading(Scores(2.0, 1.9, _rising(0.06)))] == ["pass", "info"]


# ------------------------------------------------------------------------------- consistency


def test_mean_consistency_ignores_the_diagonal_but_not_undefined_pairs():
    matrix = np.array([[1.0, 0.8, 0.9], [0.7, NAN, 0.8], [1.0, 0.6, NAN]])
    assert mean_consistency(matrix) == pytest.approx(0.8)
    matrix[1, 2] = NAN  # a pair with a collapsed embedding: the mean is undefined
    assert math.isnan(mean_consistency(matrix))
    assert math.isnan(mean_consistency(np.full((2, 2), NAN)))


@pytest.mark.parametrize(
    ("mean_train", "verdict", "words"),
    [
        (0.90, "pass", "90.0 %: in the 90s"),
        (0.8999, "warn", "90.0 %: not yet in the 90s"),
        (0.70, "warn", "70.0 %: not yet in the 90s"),
        (0.6999, "fail", "70.0 %: the runs find different embeddings"),
        (NAN, "fail", "undefined: at least one embedding is collapsed"),
    ],
)
def test_consistency_reading_thresholds(mean_train, verdict, words):
    got, text = consistency_reading(mean_train, None)
    assert got == verdict
    assert words in text and "Validation" not in text


def test_consistency_reading_between_datasets_gives_dataset_advice():
    verdict, text = consistency_reading(0.5, None, between="datasets")
    assert verdict == "fail"
    assert "the recordings find different embeddings" in text and "label you align on" in text
    assert "Grid search" in consistency_reading(0.5, None)[1]


def test_consistency_reading_calls_a_validation_gap_above_ten_points_overfitting():
    _, text = consistency_reading(1.0, 0.9)  # gap == 1 - pass threshold: not overfitting
    assert text.endswith("Validation: 90.0 %.")
    _, text = consistency_reading(0.95, 0.80)
    assert "Validation: 80.0 % — clearly lower" in text and "overfitting" in text
    _, text = consistency_reading(0.95, NAN)
    assert "Validation" not in text


# ------------------------------------------------------------------------------------ controls


@pytest.mark.parametrize(
    ("real", "control", "late", "verdict", "words"),
    [
        (0.2, 0.1, 0.0, "fail", "reaches 0.10 bits, 50% of the real model's 0.20 bits"),
        (0.3, 0.1, 0.0, "warn", "reaches 0.10 bits (limit 0.1 bits)"),
        (
            0.2,
            0.0,
            0.0,
            "pass",
            "stays at 0.00 bits (< 0.1 bits) while the real model reaches 0.20",
        ),
        (0.19, 0.0, 0.0, "warn", "not clearly above it (0.19 bits, margin 0.2 bits)"),
        (1.0, 0.0, LATE_DROP_LIMIT_BITS, "pass", "stays at 0.00 bits"),
        (1.0, 0.0, 0.06, "warn", "+0.06 bits over the last fifth"),
        (0.0, 0.5, 0.0, "fail", "reaches 0.50 bits"),
    ],
)
def test_control_verdict_thresholds(real, control, late, verdict, words):
    got, reason = control_verdict(real, control, late, "labels")
    assert got == verdict
    assert words in reason
    assert REAL_MARGIN_BITS == 0.2


# ---------------------------------------------------------------------------- recipe's checks


def test_check_is_a_json_able_dict():
    assert check("a", "A", "warn", "why", 1.5) == {
        "name": "a",
        "title": "A",
        "verdict": "warn",
        "reason": "why",
        "value": 1.5,
    }


def test_gof_checks_at_their_thresholds():
    fit, gap = gof_checks("time", "CEBRA-Time", {"gof_train": 0.35, "gof_valid": 0.1})
    assert (fit["name"], fit["verdict"], fit["value"]) == ("time_gof", "pass", 0.1)
    assert "0.10 bits on held-out data (≥ 0.1 bits)" in fit["reason"]
    assert gap["name"] == "time_overfitting" and gap["title"] == "CEBRA-Time: train vs. validation"
    assert gap["verdict"] == "pass" and gap["value"] == pytest.approx(0.25)
    fit, gap = gof_checks("b", "B", {"gof_train": 0.5, "gof_valid": 0.2})
    assert gap["verdict"] == "pass" and "gap 0.30, limit 0.3" in gap["reason"]
    fit, gap = gof_checks("b", "B", {"gof_train": 0.5, "gof_valid": 0.09})
    assert fit["verdict"] == "warn" and "Only 0.09 bits" in fit["reason"]
    assert gap["verdict"] == "warn" and "overfitting" in gap["reason"]


@pytest.mark.parametrize(
    ("part", "mean", "verdict"),
    [
        ("train", 0.9, "pass"),
        ("train", 0.89, "warn"),
        ("valid", 0.7, "warn"),
        ("valid", 0.69, "fail"),
    ],
)
def test_consistency_check_thresholds(part, mean, verdict):
    result = consistency_check(part, mean)
    assert result["verdict"] == verdict and result["name"] == f"consistency_{part}"
    assert f"R² {100 * mean:.1f} % (pass ≥ 90 %, warn ≥ 70 %)" in result["reason"]
    assert ("training" if part == "train" else "validation") in result["title"]


@pytest.mark.parametrize("part", ["train", "valid"])
def test_consistency_check_of_a_collapsed_run_fails_and_says_so(part):
    result = consistency_check(part, NAN)
    assert result["verdict"] == "fail" and result["name"] == f"consistency_{part}"
    assert "collapsed" in result["reason"] and "nan" not in result["reason"]


@pytest.mark.parametrize(
    ("r2", "verdict"), [(0.5, "pass"), (0.49, "warn"), (0.0, "warn"), (-0.01, "fail")]
)
def test_decoding_check_thresholds(r2, verdict):
    result = decoding_check({"position_r2": r2, "position_median_abs_error": 0.123})
    assert result["verdict"] == verdict and result["value"] == r2
    assert (
        f"R² {r2:.2f} (pass ≥ 0.5)" in result["reason"] and "0.123 label units" in result["reason"]
    )


def _grid(recipe_gof: float, best_gof: float) -> dict:
    rows = [
        {"name": "recipe", "output_dimension": 3, "gof_valid": recipe_gof},
        {"name": "other", "output_dimension": 8, "gof_valid": best_gof},
    ]
    return {"best": rows[1], "results": rows, "varied": ["output_dimension"]}


def test_grid_check_thresholds():
    result = grid_check(_grid(0.0, 0.1), {"output_dimension": 3})  # gain == limit
    assert result["verdict"] == "pass" and result["value"] == 0.1
    assert (
        "(0.00 bits on validation) is within 0.1 bits of the best, other (0.10" in result["reason"]
    )
    result = grid_check(_grid(0.0, 0.25), {"output_dimension": 3})
    assert result["verdict"] == "warn" and "by 0.25 bits (0.25 vs 0.00)" in result["reason"]
    result = grid_check(_grid(0.0, 0.25), {"output_dimension": 16})
    assert result["verdict"] == "pass" and "not part of this grid" in result["reason"]
    assert result["value"] == 0.25


def test_overall_verdict_is_the_worst():
    assert overall_verdict(["pass", "warn", "fail", "pass"]) == "fail"
    assert overall_verdict(["pass", "warn", "info"]) == "warn"
    assert overall_verdict(iter(["pass", "info"])) == "pass"
    assert overall_verdict(["info"]) == "skipped"
    assert overall_verdict([]) == "skipped"


# --------------------------------------------------------------------------------------- HTML


def test_verdict_format_badges_titles_and_escapes():
    from napari_cebra._widgets.verdict_format import (
        VERDICT_COLOURS,
        reading_html,
        verdict_badge,
        verdict_line,
    )

    assert verdict_badge("warn") == f"<b style='color:{VERDICT_COLOURS['warn']}'>WARN</b>"
    assert "SKIPPED" in verdict_badge("skipped")
    assert verdict_line("fail", "a < b", title="R&D") == (
        f"{verdict_badge('fail')} <b>R&amp;D</b>: a &lt; b"
    )
    assert reading_html([("pass", "x"), ("info", "y")]) == (
        f"{verdict_badge('pass')} x<br>{verdict_badge('info')} y"
    )
