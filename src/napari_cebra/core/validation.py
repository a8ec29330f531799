"""Input checks for the CEBRA estimator.

Every check raises a ``ValueError`` whose message names the array (``"X"``, ``"y[0]"``,
``"X[1]"`` …), its shape and the offending value. Arrays are always copied into new float32 /
int64 arrays, so the caller's data is never modified in place and read-only inputs are fine.

This module imports numpy only; torch tensors are recognised without importing torch.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CONDITIONALS = ("time", "time_delta", "delta", "delta_normal")
DISTANCES = ("cosine", "euclidean")
TEMPERATURE_MODES = ("constant", "auto")
PRECISIONS = ("auto", "float32", "bfloat16")
CRITERIA = ("infonce",)
HYBRID_BEHAVIOUR_DIMENSIONS = 3


@dataclass(frozen=True)
class LabelSet:
    """Labels of one recording after validation and typing (spec §1.2).

    Attributes
    ----------
    continuous : np.ndarray or None
        ``(N, k)`` float32, all floating label arrays concatenated along the feature axis.
    discrete : np.ndarray or None
        ``(N,)`` int64, the (single) integer label array.
    label_types : list of tuple
        ``(dtype, shape)`` of every label array as given, in order.
    """

    continuous: np.ndarray | None
    discrete: np.ndarray | None
    label_types: list[tuple[np.dtype, tuple[int, ...]]]

    @property
    def kind(self) -> str:
        """``"none"``, ``"continuous"``, ``"discrete"`` or ``"mixed"``."""
        if self.continuous is not None and self.discrete is not None:
            return "mixed"
        if self.continuous is not None:
            return "continuous"
        if self.discrete is not None:
            return "discrete"
        return "none"


def as_numpy(value: Any) -> np.ndarray:
    """Return ``value`` as a numpy array (torch tensors are detached and moved to the CPU)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def is_multi_session(X: Any) -> bool:
    """Whether ``X`` is a list/tuple of recordings (its first element is 2-D), spec §1.5."""
    if not isinstance(X, (list, tuple)) or len(X) == 0:
        return False
    first = X[0]
    return getattr(first, "ndim", None) == 2 or (
        isinstance(first, (list, tuple)) and len(first) > 0 and isinstance(first[0], Sequence)
    )


def check_data(
    X: Any, name: str = "X", min_samples: int = 1, requirement: str = "", copy: bool = True
) -> np.ndarray:
    """Validate a ``(time, features)`` data matrix and return it as C-contiguous float32.

    Parameters
    ----------
    X : array-like or torch.Tensor
        Numeric data; integer, boolean and float16 inputs are cast to float32.
    name : str
        How the array is called in error messages.
    min_samples : int
        Minimum number of rows (time steps).
    requirement : str
        Why ``min_samples`` rows are needed (appended to the error message).
    copy : bool
        Always return a new array (default). With ``False`` a C-contiguous float32 NumPy array
        is returned as it is, so read-only uses such as ``transform`` of a long recording need
        no second copy of it.

    Returns
    -------
    np.ndarray
        C-contiguous float32 array of shape ``(N, n)``; it shares no memory with ``X`` unless
        ``copy=False``.

    Raises
    ------
    ValueError
        For text, complex or other non-numeric values, a dimension other than 2, zero features,
        fewer than ``min_samples`` rows, NaN or infinite values.
    TypeError
        For object arrays holding values that are neither numbers nor strings.
    """
    if _is_sparse(X):
        raise ValueError(
            f"{name} is a sparse matrix, but sparse input is not supported: dense data is "
            "required, convert it with X.toarray()."
        )
    array = as_numpy(X)
    array = _numeric_array(array, name)
    if array.ndim != 2:
        hint = (
            " Reshape your data with X.reshape(-1, 1) if it has a single feature."
            if (array.ndim == 1)
            else ""
        )
        raise ValueError(
            f"{name} must be a 2-D array of shape (time steps, features), got a {array.ndim}-D "
            f"array of shape {array.shape}.{hint}"
        )
    n_samples, n_features = array.shape
    if n_features == 0:
        raise ValueError(
            f"{name} has 0 feature(s) (shape={array.shape}) while a minimum of 1 is required."
        )
    if n_samples < max(min_samples, 1):
        reason = f" ({requirement})" if requirement else ""
        raise ValueError(
            f"{name} has {n_samples} sample(s) (shape={array.shape}), but a minimum of "
            f"{max(min_samples, 1)} is required{reason}."
        )
    with np.errstate(over="ignore"):
        if copy:
            result = np.array(array, dtype=np.float32, order="C", copy=True)
        else:
            result = np.ascontiguousarray(array, dtype=np.float32)
    check_finite(array if array.dtype.kind == "f" else result, name)
    if array.dtype.kind == "f":
        check_finite(result, name, what="value(s) too large for float32 (infinite after casting)")
    return result


def _is_sparse(value: Any) -> bool:
    """Whether ``value`` is a scipy sparse matrix/array (without importing scipy)."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(value)


def _all_finite(array: np.ndarray, chunk_bytes: int = 1 << 24) -> bool:
    """``np.isfinite(array).all()`` in blocks of rows, without a mask as large as ``array``."""
    if array.ndim == 0 or array.size == 0:
        return bool(np.isfinite(array).all())
    rows = max(1, chunk_bytes // max(1, array[0].size))
    return all(np.isfinite(array[i : i + rows]).all() for i in range(0, len(array), rows))


def check_finite(array: np.ndarray, name: str, what: str = "") -> None:
    """Raise a ``ValueError`` if ``array`` holds NaN or infinite values.

    The message gives the number of NaN and infinite entries and the first row containing one.
    """
    if array.dtype.kind != "f" or _all_finite(array):
        return
    bad = ~np.isfinite(array)
    rows = bad.reshape(bad.shape[0], -1).any(axis=1) if bad.ndim > 1 else bad
    first_row = int(np.flatnonzero(rows)[0])
    n_nan = int(np.isnan(array).sum())
    n_inf = int(bad.sum()) - n_nan
    if what:
        detail = f"{int(bad.sum())} {what}"
    else:
        detail = f"{n_nan} NaN and {n_inf} infinite (inf) value(s)"
    raise ValueError(
        f"{name} contains {detail} in {int(rows.sum())} row(s) of {array.shape[0]}; "
        f"the first is row {first_row} (shape={array.shape}). Input contains NaN or infinity: "
        "remove or interpolate these values."
    )


def check_labels(
    labels: Sequence[Any], n_samples: int, names: Sequence[str] | None = None
) -> LabelSet:
    """Validate and type the label arrays of one recording (spec §1.2).

    Floating arrays become continuous labels (1-D reshaped to ``(N, 1)``, several concatenated
    along the feature axis); integer arrays become the discrete label (squeezed to 1-D, at most
    one, non-negative).

    Parameters
    ----------
    labels : sequence of array-like
        The positional label arrays given to ``fit``.
    n_samples : int
        Number of rows of the data; every label array must have exactly this many.
    names : sequence of str, optional
        Names used in messages; by default array ``i`` is called ``f"y[{i}]"``.

    Returns
    -------
    LabelSet

    Raises
    ------
    ValueError
        For boolean, text or object labels, NaN/inf, a length different from ``n_samples``,
        negative or non-1-D discrete labels, more than one discrete array, or 3-D arrays.
    """
    continuous: list[np.ndarray] = []
    discrete: np.ndarray | None = None
    label_types: list[tuple[np.dtype, tuple[int, ...]]] = []
    if names is None:
        names = [f"y[{index}]" for index in range(len(labels))]
    for name, label in zip(names, labels, strict=True):
        array = as_numpy(label)
        _check_label_dtype(array, name)
        if array.ndim == 0 or array.shape[0] != n_samples:
            length = "a scalar" if array.ndim == 0 else f"{array.shape[0]} samples"
            raise ValueError(
                f"Invalid number of samples: {name} has {length} (shape={array.shape}) but the "
                f"data has {n_samples}; labels and data must have the same length."
            )
        label_types.append((array.dtype, tuple(array.shape)))
        if array.dtype.kind == "f":
            continuous.append(_continuous_label(array, name))
        else:
            if discrete is not None:
                raise ValueError(
                    f"{name} is a second integer (discrete) label array; only one discrete label "
                    "array is allowed. Combine the categories into one integer array."
                )
            discrete = _discrete_label(array, name)
    merged = np.concatenate(continuous, axis=1) if continuous else None
    return LabelSet(continuous=merged, discrete=discrete, label_types=label_types)


def _numeric_array(array: np.ndarray, name: str) -> np.ndarray:
    """Reject non-numeric data; convert object arrays holding numbers to float64."""
    kind = array.dtype.kind
    if kind in "biuf":
        return array
    if kind == "O":
        try:
            return np.asarray(array, dtype=np.float64)
        except ValueError as error:
            raise ValueError(f"{name} must contain numbers: {error}.") from None
    complex_note = "Complex data not supported. " if kind == "c" else ""
    raise ValueError(
        f"{complex_note}{name} must contain numbers, got dtype {array.dtype} "
        f"(shape={array.shape}); convert text, dates or complex values before fitting."
    )


def _check_label_dtype(array: np.ndarray, name: str) -> None:
    """Only floating (continuous) and integer (discrete) labels are meaningful."""
    kind = array.dtype.kind
    if kind in "iuf":
        return
    if kind == "b":
        hint = (
            " Cast it to int (a discrete label, e.g. y.astype(int)) or to float (a continuous "
            "label)."
        )
    else:
        hint = " Encode categories as integers (discrete) or values as floats (continuous)."
    raise ValueError(
        f"Unknown label type: {name} has dtype {array.dtype} (shape={array.shape}); labels must "
        f"be floating point (continuous) or integer (discrete).{hint}"
    )


def _continuous_label(array: np.ndarray, name: str) -> np.ndarray:
    """Float32 ``(N, k)`` copy of a floating label array."""
    if array.ndim > 2:
        raise ValueError(
            f"{name} must be 1-D or 2-D (time steps, label dimensions), got shape {array.shape}."
        )
    check_finite(array, name)
    with np.errstate(over="ignore"):
        result = np.array(array, dtype=np.float32, order="C", copy=True)
    result = result.reshape(array.shape[0], -1)
    check_finite(result, name, what="value(s) too large for float32 (infinite after casting)")
    if result.shape[1] == 0:
        raise ValueError(f"{name} has 0 label dimensions (shape={array.shape}).")
    return result


def _discrete_label(array: np.ndarray, name: str) -> np.ndarray:
    """Int64 1-D copy of an integer label array; values must be non-negative."""
    squeezed = array.reshape(array.shape[0], -1)
    if squeezed.shape[1] != 1:
        raise ValueError(
            f"{name} is an integer (discrete) label of shape {array.shape}; discrete labels must "
            "be one-dimensional (one category per time step)."
        )
    values = squeezed[:, 0]
    if array.dtype.kind == "u" and values.size and int(values.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds values larger than int64 can represent.")
    result = np.array(values, dtype=np.int64, copy=True)
    negative = result < 0
    if negative.any():
        raise ValueError(
            f"{name} has {int(negative.sum())} negative discrete label(s), the first at row "
            f"{int(np.flatnonzero(negative)[0])} (value {int(result[negative][0])}); discrete "
            "labels must be non-negative integers 0, 1, 2, …"
        )
    return result


def resolve_time_offset(time_offsets: Any) -> int:
    """Return the single time offset Δt given as an int or a one-element iterable (spec §1.1).

    Raises
    ------
    NotImplementedError
        For more than one time offset (as the reference).
    ValueError
        For a non-integer or a value smaller than 1.
    """
    value = time_offsets
    if isinstance(value, (list, tuple, np.ndarray)):
        values = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else list(value)
        if len(values) != 1:
            raise NotImplementedError(
                "Support for multiple time offsets is not yet implemented; give time_offsets as "
                f"one integer, got {time_offsets!r}."
            )
        value = values[0]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"time_offsets must be a positive integer, got {time_offsets!r}.")
    if value < 1:
        raise ValueError(f"time_offsets must be >= 1, got {time_offsets!r}.")
    return int(value)


def resolve_conditional(conditional: str | None) -> str:
    """Return the positive-pair distribution for continuous labels (``None`` → ``time_delta``).

    ``"delta"`` is a deprecated alias of ``"delta_normal"`` (``DeprecationWarning``).
    """
    if conditional is None:
        return "time_delta"
    if conditional == "delta":
        warnings.warn(
            "conditional='delta' is deprecated; use conditional='delta_normal'.",
            DeprecationWarning,
            stacklevel=4,
        )
        return "delta_normal"
    return conditional


def check_hyperparameters(params: dict[str, Any]) -> None:
    """Validate the estimator's constructor parameters before a fit.

    Parameters
    ----------
    params : dict
        ``CEBRA.get_params()``.

    Raises
    ------
    ValueError
        Naming the parameter and its invalid value.
    """
    _check_choice("criterion", params["criterion"], CRITERIA)
    _check_choice("distance", params["distance"], DISTANCES)
    _check_choice("temperature_mode", params["temperature_mode"], TEMPERATURE_MODES)
    _check_choice("precision", params.get("precision", "auto"), PRECISIONS)
    conditional = params["conditional"]
    if conditional is not None:
        _check_choice("conditional", conditional, CONDITIONALS)
    if conditional in ("delta", "delta_normal"):
        delta = params["delta"]
        if delta is None:
            raise ValueError(
                f"conditional={conditional!r} needs delta (the standard deviation of the Gaussian "
                "around each reference label), but delta=None."
            )
        _check_positive_number("delta", delta)
    batch_size = params["batch_size"]
    if batch_size is not None:
        check_positive_int("batch_size", batch_size, hint="or None for full-batch training")
    check_positive_int("max_iterations", params["max_iterations"])
    check_positive_int("max_adapt_iterations", params["max_adapt_iterations"])
    check_positive_int("output_dimension", params["output_dimension"])
    check_positive_int("num_hidden_units", params["num_hidden_units"])
    _check_positive_number("learning_rate", params["learning_rate"])
    _check_positive_number("temperature", params["temperature"])
    if params["min_temperature"] is not None:
        _check_positive_number("min_temperature", params["min_temperature"])
    resolve_time_offset(params["time_offsets"])
    if params["hybrid"] and params["output_dimension"] < HYBRID_BEHAVIOUR_DIMENSIONS:
        raise ValueError(
            "hybrid=True uses the first 3 output dimensions for the behaviour objective, so "
            f"output_dimension must be >= 3, got {params['output_dimension']}."
        )
    seed = params.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(f"seed must be an integer or None, got {seed!r}.")
    if seed is not None and seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; expected one of {', '.join(choices)}.")


def check_positive_int(name: str, value: Any, hint: str = "") -> None:
    """Raise a ``ValueError`` unless ``value`` is an integer > 0 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        extra = f" ({hint})" if hint else ""
        raise ValueError(f"{name} must be a positive integer{extra}, got {value!r}.")


def _check_positive_number(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(float(value))
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
