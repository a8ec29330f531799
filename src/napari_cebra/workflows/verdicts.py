"""Every verdict of the best-practice recipe, with its thresholds (plain Python: no Qt, no napari).

One vocabulary for all of them:

* ``"pass"``: the check meets the recipe's expectation;
* ``"warn"``: usable with care (the text says what to try);
* ``"fail"``: do not interpret the result yet;
* ``"info"``: an informative line of a reading (:func:`gof_reading` only), never a check's
  verdict and never part of an overall verdict.

:func:`overall_verdict` of nothing checked is ``"skipped"``.

The readings return ``(verdict, text)`` pairs whose text names the numbers and the thresholds;
the widgets only turn them into HTML. The recipe's checks (:func:`gof_checks`,
:func:`consistency_check`, :func:`grid_check`, :func:`decoding_check`) are JSON-able dicts made by
:func:`check`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol

import numpy as np

Verdict = Literal["pass", "warn", "fail"]
Reading = Literal["pass", "warn", "fail", "info"]

THRESHOLDS: dict[str, float] = {
    "consistency_train_pass": 0.90,
    "consistency_train_warn": 0.70,
    "consistency_valid_pass": 0.90,
    "consistency_valid_warn": 0.70,
    "gof_min_bits": 0.1,
    "overfit_gap_bits": 0.3,
    "grid_gain_bits": 0.1,
    "decoding_r2_pass": 0.5,
}
"""Verdict thresholds of the recipe. Consistency as R² (0.9 = 90 %); GoF in bits."""

CONTROL_GOF_LIMIT_BITS = 0.1
"""A control above this goodness of fit (bits) has found structure it should not find."""
REAL_MARGIN_BITS = 0.2
"""The real model must exceed the control by at least this many bits to be 'clearly above'."""
CONTROL_TO_REAL_FAIL_RATIO = 0.5
"""A control reaching this fraction of the real model's goodness of fit fails the check."""
LATE_DROP_LIMIT_BITS = 0.05
"""A goodness of fit still rising by more than this over the last fifth has not settled."""


# ---------------------------------------------------------------------------------------------
# goodness of fit


class GofScores(Protocol):
    """What :func:`gof_reading` reads: final scores and the GoF history of training."""

    gof_train: float
    gof_valid: float | None
    history: np.ndarray


def late_gof_rise(history: np.ndarray) -> float:
    """Rise of the goodness of fit over the last fifth of training (bits).

    Parameters
    ----------
    history : np.ndarray
        Goodness of fit (bits) of every training step.

    Returns
    -------
    float
        Mean of the last fifth minus the mean of the fifth before it; 0 with fewer than 10 steps.
    """
    n_steps = len(history)
    if n_steps < 10:
        return 0.0
    fifth = n_steps // 5
    before = history[n_steps - 2 * fifth : n_steps - fifth]
    last = history[n_steps - fifth :]
    return float(np.mean(last) - np.mean(before))


def gof_reading(result: GofScores) -> list[tuple[Reading, str]]:
    """The recipe's reading of a GoF result: ``(verdict, sentence)`` pairs, most important first.

    Parameters
    ----------
    result : GofScores
        ``gof_train``, ``gof_valid`` (``None`` without a validation part) and ``history``.

    Returns
    -------
    list of (str, str)
        ``"fail"`` when the training GoF is below ``THRESHOLDS["gof_min_bits"]``; ``"warn"`` for a
        train–validation gap above ``THRESHOLDS["overfit_gap_bits"]`` or a validation GoF below
        the minimum; ``"info"`` without a validation part and for a late rise above
        :data:`LATE_DROP_LIMIT_BITS` (``"warn"`` when the gap is too large as well); a ``"pass"``
        line first when nothing failed or warned.
    """
    minimum, gap_limit = THRESHOLDS["gof_min_bits"], THRESHOLDS["overfit_gap_bits"]
    train, valid = result.gof_train, result.gof_valid
    rise = late_gof_rise(result.history)
    lines: list[tuple[Reading, str]] = []
    if train < minimum:
        lines.append(
            (
                "fail",
                f"{train:.2f} bits on the training part: the embedding is collapsed or "
                "uninformative (0 bits = chance). Train longer, check that the neural data has "
                "activity, or try another temperature / learning rate.",
            )
        )
    if valid is None:
        lines.append(
            (
                "info",
                "No validation part (the model was trained on every frame): overfitting cannot "
                "be judged. Set a validation fraction when training.",
            )
        )
    else:
        gap = train - valid
        if gap > gap_limit:
            lines.append(
                (
                    "warn",
                    f"Overfitting: {train:.2f} bits on training but {valid:.2f} bits on held-out "
                    f"frames (gap {gap:.2f} > {gap_limit} bits). Use fewer iterations, a smaller "
                    "model or more data.",
                )
            )
        elif valid < minimum <= train:
            lines.append(
                (
                    "warn",
                    f"Only {valid:.2f} bits on held-out frames (< {minimum} bits): what the model "
                    "learned does not carry over to new data.",
                )
            )
    if rise > LATE_DROP_LIMIT_BITS:
        if valid is not None and train - valid > gap_limit:
            text = (
                f"GoF was still rising at the end of training (+{rise:.2f} bits over the last "
                "fifth) while validation lags behind: the late gain is overfitting."
            )
            lines.append(("warn", text))
        else:
            text = (
                f"GoF was still rising at the end of training (+{rise:.2f} bits over the last "
                "fifth): more iterations may help; watch the validation GoF for overfitting."
            )
            lines.append(("info", text))
    if not any(verdict in ("fail", "warn") for verdict, _ in lines):
        if valid is None:
            text = (
                f"{train:.2f} bits on the training part: the embedding is informative "
                f"(≥ {minimum} bits); without held-out frames, generalisation is not judged."
            )
        else:
            text = (
                f"{train:.2f} bits on the training part and {valid:.2f} bits on held-out frames: "
                f"the embedding is informative and generalises (≥ {minimum} bits, gap ≤ "
                f"{gap_limit} bits)."
            )
        lines.insert(0, ("pass", text))
    return lines


# ---------------------------------------------------------------------------------------------
# consistency


def mean_consistency(matrix: np.ndarray) -> float:
    """Mean of the off-diagonal entries of a square consistency matrix.

    NaN if any of them is NaN: ``consistency_score`` gives NaN for pairs with a collapsed
    embedding, and one collapsed run makes the whole comparison fail (see
    :func:`consistency_reading`).
    """
    values = np.asarray(matrix, dtype=np.float64)
    off_diagonal = values[~np.eye(len(values), dtype=bool)]
    return float(off_diagonal.mean()) if off_diagonal.size else float("nan")


def _collapsed_text(what: str) -> str:
    """What an undefined (NaN) consistency means."""
    return (
        f"at least one embedding is collapsed (all its frames map to the same point), so the "
        f"{what} cannot be compared: there is no structure to interpret. Check that the "
        "recording has activity (a constant or all-zero recording collapses) and that training "
        "did not diverge."
    )


def consistency_reading(
    mean_train: float, mean_valid: float | None, between: str = "runs"
) -> tuple[Verdict, str]:
    """The recipe's verdict on a consistency result and what it means in words.

    The CEBRA authors expect the training consistency between runs in the 90s; below that the
    embedding depends on the seed and should not be interpreted before the training is improved.

    Parameters
    ----------
    mean_train : float
        Mean training consistency (R², 0.9 = 90 %).
    mean_valid : float or None
        Mean validation consistency (``None`` or NaN without a split).
    between : {"runs", "datasets"}
        What was compared (changes the advice).

    Returns
    -------
    (str, str)
        ``"pass"`` from ``THRESHOLDS["consistency_train_pass"]``, ``"warn"`` from
        ``THRESHOLDS["consistency_train_warn"]``, ``"fail"`` below; the text names both means and
        calls a validation mean lower by more than ``1 − pass threshold`` overfitting. A NaN
        training mean (a collapsed embedding) fails with a text saying "collapsed".
    """
    good, fair = THRESHOLDS["consistency_train_pass"], THRESHOLDS["consistency_train_warn"]
    what = "runs" if between == "runs" else "recordings"
    if np.isnan(mean_train):
        return "fail", f"Training consistency undefined: {_collapsed_text(what)}"
    score = f"Mean training consistency {100 * mean_train:.1f} %"
    verdict: Verdict
    if mean_train >= good:
        verdict = "pass"
        text = (
            f"{score}: in the 90s, as the recipe asks. The {what} find the same embedding up to "
            "a linear map, so its structure is not an accident of one seed."
        )
    else:
        verdict = "warn" if mean_train >= fair else "fail"
        advice = (
            "Try more iterations (is the loss still falling?), a lower learning rate, another "
            "output dimension or temperature: the Grid search widget compares them."
        )
        if between == "datasets":
            advice = (
                "Check that the label you align on describes the same behaviour in every "
                "recording, and that each model is consistent between its own runs first."
            )
        opening = (
            "not yet in the 90s the recipe asks for"
            if verdict == "warn"
            else f"the {what} find different embeddings: do not interpret a single one yet"
        )
        text = f"{score}: {opening}. {advice}"
    if mean_valid is not None and np.isfinite(mean_valid):
        text += f" Validation: {100 * mean_valid:.1f} %"
        gap = mean_train - mean_valid
        if gap > 1 - good:
            text += (
                " — clearly lower than on the training frames: the runs agree on what they were "
                "trained on more than on new data (overfitting; fewer iterations or more data)."
            )
        else:
            text += "."
    return verdict, text


# ---------------------------------------------------------------------------------------------
# shuffle controls


def control_verdict(
    real_gof: float, control_gof: float, late_drop_bits: float, what: str
) -> tuple[Verdict, str]:
    """Verdict of a shuffle control from goodness-of-fit values in bits.

    Parameters
    ----------
    real_gof, control_gof : float
        Goodness of fit of the real model and of the control.
    late_drop_bits : float
        Rise of the control's goodness of fit over the last fifth of training
        (:func:`late_gof_rise`).
    what : str
        What was shuffled, for the message ("labels", "neural data").

    Returns
    -------
    (str, str)
        ``"fail"`` when the control reaches :data:`CONTROL_GOF_LIMIT_BITS` and
        :data:`CONTROL_TO_REAL_FAIL_RATIO` of the real model; ``"warn"`` when it only reaches the
        limit, when the real model is less than :data:`REAL_MARGIN_BITS` above it, or when its
        GoF still rose by more than :data:`LATE_DROP_LIMIT_BITS` late in training; else
        ``"pass"``. The reason names the numbers.
    """
    limit = CONTROL_GOF_LIMIT_BITS
    if control_gof >= limit and control_gof >= CONTROL_TO_REAL_FAIL_RATIO * real_gof:
        return "fail", (
            f"The control with shuffled {what} reaches {control_gof:.2f} bits, "
            f"{control_gof / max(real_gof, 1e-12):.0%} of the real model's {real_gof:.2f} bits: "
            "the embedding's structure does not come from the link between neurons and behaviour."
        )
    if control_gof >= limit:
        return "warn", (
            f"The control with shuffled {what} reaches {control_gof:.2f} bits (limit {limit} bits), "
            f"although the real model is higher ({real_gof:.2f} bits): part of the structure is "
            "found in shuffled data too."
        )
    if real_gof < control_gof + REAL_MARGIN_BITS:
        return "warn", (
            f"The control stays near chance ({control_gof:.2f} bits) but the real model is not "
            f"clearly above it ({real_gof:.2f} bits, margin {REAL_MARGIN_BITS} bits): the labels "
            "explain little of the neural data, or training was too short."
        )
    if late_drop_bits > LATE_DROP_LIMIT_BITS:
        return "warn", (
            f"The control's loss still dropped late in training (+{late_drop_bits:.2f} bits over "
            f"the last fifth): the model starts to fit the shuffled {what} (overfitting); "
            "use fewer iterations or more data."
        )
    return "pass", (
        f"The control with shuffled {what} stays at {control_gof:.2f} bits (< {limit} bits) while "
        f"the real model reaches {real_gof:.2f} bits."
    )


# ---------------------------------------------------------------------------------------------
# the recipe's checks


def check(
    name: str, title: str, verdict: Verdict, reason: str, value: Any = None
) -> dict[str, Any]:
    """One JSON-able check of the recipe: ``name``, ``title``, ``verdict``, ``reason``, ``value``."""
    return {"name": name, "title": title, "verdict": verdict, "reason": reason, "value": value}


def gof_checks(prefix: str, title: str, section: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Goodness of fit on held-out data and train–validation gap of a model section.

    Parameters
    ----------
    prefix, title : str
        Prefix of the check names (``"{prefix}_gof"``, ``"{prefix}_overfitting"``) and of the
        titles.
    section : mapping
        ``gof_train`` and ``gof_valid`` in bits.

    Returns
    -------
    list of dict
        ``"pass"``/``"warn"`` for ``gof_valid ≥ THRESHOLDS["gof_min_bits"]`` and for
        ``gof_train − gof_valid ≤ THRESHOLDS["overfit_gap_bits"]``.
    """
    minimum, gap_limit = THRESHOLDS["gof_min_bits"], THRESHOLDS["overfit_gap_bits"]
    gof_train, gof_valid = section["gof_train"], section["gof_valid"]
    if gof_valid >= minimum:
        fit = check(
            f"{prefix}_gof",
            f"{title}: goodness of fit",
            "pass",
            f"{gof_valid:.2f} bits on held-out data (≥ {minimum} bits).",
            gof_valid,
        )
    else:
        fit = check(
            f"{prefix}_gof",
            f"{title}: goodness of fit",
            "warn",
            f"Only {gof_valid:.2f} bits on held-out data (< {minimum} bits): the embedding is "
            "close to chance; train longer or check the data.",
            gof_valid,
        )
    gap = gof_train - gof_valid
    generalisation = check(
        f"{prefix}_overfitting",
        f"{title}: train vs. validation",
        "pass" if gap <= gap_limit else "warn",
        f"GoF train {gof_train:.2f} bits, validation {gof_valid:.2f} bits (gap {gap:.2f}, "
        f"limit {gap_limit})."
        + (
            ""
            if gap <= gap_limit
            else " The model fits the training part much better: overfitting."
        ),
        gap,
    )
    return [fit, generalisation]


def consistency_check(part: str, mean: float) -> dict[str, Any]:
    """Check of the mean between-run consistency on the ``"train"`` or ``"valid"`` frames.

    ``"pass"`` from ``THRESHOLDS[f"consistency_{part}_pass"]``, ``"warn"`` from
    ``THRESHOLDS[f"consistency_{part}_warn"]``, ``"fail"`` below; NaN (a run's embedding is
    collapsed, see ``core.consistency.is_collapsed``) fails with a reason saying "collapsed".
    """
    passing, warning = (
        THRESHOLDS[f"consistency_{part}_pass"],
        THRESHOLDS[f"consistency_{part}_warn"],
    )
    name = "training" if part == "train" else "validation"
    title = f"Consistency across runs ({name})"
    if np.isnan(mean):
        reason = f"Mean between-run R² undefined: {_collapsed_text('runs')}"
        return check(f"consistency_{part}", title, "fail", reason, mean)
    verdict: Verdict
    if mean >= passing:
        verdict, advice = "pass", ""
    elif mean >= warning:
        verdict, advice = "warn", " Runs disagree somewhat: train longer or grid-search parameters."
    else:
        verdict, advice = "fail", " Runs find different embeddings: do not interpret one of them."
    return check(
        f"consistency_{part}",
        title,
        verdict,
        f"Mean between-run R² {100 * mean:.1f} % (pass ≥ {100 * passing:.0f} %, "
        f"warn ≥ {100 * warning:.0f} %).{advice}",
        mean,
    )


def decoding_check(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Check of kNN decoding: ``"pass"`` from ``THRESHOLDS["decoding_r2_pass"]``, ``"warn"`` from
    R² 0, ``"fail"`` below (worse than predicting the mean)."""
    r2, error = summary["position_r2"], summary["position_median_abs_error"]
    limit = THRESHOLDS["decoding_r2_pass"]
    verdict: Verdict = "pass" if r2 >= limit else ("warn" if r2 >= 0 else "fail")
    return check(
        "decoding",
        "Decoding behaviour (CEBRA-Behavior embedding)",
        verdict,
        f"kNN decoding of label column 0 on held-out data: R² {r2:.2f} (pass ≥ {limit}), median "
        f"absolute error {error:.3g} label units.",
        r2,
    )


def grid_check(section: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Is the recipe's configuration (close to) the best of the grid?

    Parameters
    ----------
    section : mapping
        The grid-search section: ``best`` row, all ``results`` rows, the ``varied`` parameters.
    params : mapping
        The recipe's configuration.

    Returns
    -------
    dict
        ``"pass"`` when the configuration is not in the grid or within
        ``THRESHOLDS["grid_gain_bits"]`` of the best validation GoF, else ``"warn"``.
    """
    best = section["best"]
    recipe_row = next(
        (
            row
            for row in section["results"]
            if all(row.get(key) == params.get(key) for key in section["varied"])
        ),
        None,
    )
    title = "Grid search"
    if recipe_row is None:
        return check(
            "grid_search",
            title,
            "pass",
            f"Best configuration {best['name']} ({best['gof_valid']:.2f} bits on validation); "
            "the recipe's configuration is not part of this grid.",
            best["gof_valid"],
        )
    gain = best["gof_valid"] - recipe_row["gof_valid"]
    limit = THRESHOLDS["grid_gain_bits"]
    # settings of every grid point that differ from the recipe's (e.g. a full-batch grid)
    differing = {
        key: value
        for key, value in (section.get("fixed") or {}).items()
        if params.get(key) != value
    }
    trained = (
        " Every grid point, the recipe's configuration included, was trained with "
        + ", ".join(f"{key}={value!r}" for key, value in differing.items())
        + "."
        if differing
        else ""
    )
    if gain <= limit:
        return check(
            "grid_search",
            title,
            "pass",
            f"The recipe's configuration ({recipe_row['gof_valid']:.2f} bits on validation) is "
            f"within {limit} bits of the best, {best['name']} ({best['gof_valid']:.2f} bits)."
            + trained,
            gain,
        )
    return check(
        "grid_search",
        title,
        "warn",
        f"{best['name']} fits the validation data better than the recipe's configuration by "
        f"{gain:.2f} bits ({best['gof_valid']:.2f} vs {recipe_row['gof_valid']:.2f}); consider "
        "its parameters." + trained,
        gain,
    )


def overall_verdict(verdicts: Iterable[str]) -> str:
    """The worst of ``verdicts`` (``"fail"`` > ``"warn"`` > ``"pass"``; ``"info"`` is ignored),
    ``"skipped"`` when none of them is a verdict."""
    present = set(verdicts)
    for verdict in ("fail", "warn", "pass"):
        if verdict in present:
            return verdict
    return "skipped"
