"""Model files: our versioned format, and code-free reading of ``cebra`` 0.6.x files.

Our file is a ``torch.save`` of a dict holding only plain Python values and tensors::

    {"format": "napari-cebra", "format_version": 1,
     "params": {...constructor parameters...},
     "state": {"device_", "offset_": [left, right], "solver_name_", "label_types_",
               "n_features_", "n_features_in_", "num_sessions_", "seed_", "precision_"},
     "state_dict": {...solver state: model, optimizer, loss, log, criterion, ...},
     "metadata": {"napari_cebra_version", "torch_version", "numpy_version", "sklearn_version"}}

It is written atomically (temporary file in the same folder, then ``os.replace``) and read with
``torch.load(weights_only=True)``, which cannot execute code. Files written by ``cebra`` 0.6.x
``CEBRA.save`` (``args``/``state``/``state_dict``/``metadata``) are read the same way: the few
non-tensor classes they contain (the ``cebra.data.datatypes.Offset`` record, numpy dtypes, torch's
version string) are mapped to harmless stand-ins, so neither the ``cebra`` package nor any pickled
code is needed.

Before anything is unpickled, the file must be a zip archive (``torch.save``'s format) whose
members are all stored uncompressed, as ``torch.save`` writes them, and match their CRC-32
checksums; so a damaged byte anywhere is refused instead of loading as wrong weights, and no
member can expand beyond the file's size. After unpickling, tensors may appear only where a model
file keeps them (encoder weights, criterion parameters, optimizer state, loss history), and the
encoder's weights must have exactly the shapes its architecture and input width give; these are
compared on storage-free models, so no size claimed by a file is allocated before that.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_cebra.core.files import replace_file_atomically

FORMAT = "napari-cebra"
FORMAT_VERSION = 1
_CEBRA_KEYS = ("args", "state", "state_dict")
_SOLVER_NAMES = ("single-session", "single-session-full", "single-session-hybrid", "multi-session")
_HYBRID_PREFIX = "module."
# Where a model file keeps tensors: state_dict.model.<key>, state_dict.criterion.<key>,
# state_dict.optimizer.state.<index>.<name> and state_dict.loss.
_TENSOR_PLACES = {
    ("state_dict", "model"): 1,
    ("state_dict", "criterion"): 1,
    ("state_dict", "optimizer", "state"): 2,
    ("state_dict", "loss"): 0,
}


@dataclass(frozen=True)
class ModelState:
    """What a model file holds, as plain values and tensors (no estimator).

    ``CEBRA.to_state`` makes one and ``CEBRA.from_state`` builds an estimator from one; this
    module only writes and reads them.

    Attributes
    ----------
    params : dict
        Constructor parameters.
    device : str
        The device the model lives on (when read: the saved one if it exists here, else the CPU).
    solver_name : str
        ``"single-session"``, ``"single-session-full"``, ``"single-session-hybrid"`` or
        ``"multi-session"``.
    label_types : list
        ``(np.dtype, shape)`` of the fit's label arrays (per session in nested lists).
    n_features : int or list of int
        Input width(s).
    seed : int or None
        The seed training used (``None`` for cebra files).
    solver_state : dict
        ``Solver.state_dict()``: ``model``, ``optimizer``, ``loss``, ``log``, ``criterion``, ….
    offset : tuple of int, optional
        ``(left, right)`` receptive field of the encoder (written to our files for readers).
    precision : str, optional
        The arithmetic training used (``"float32"`` or ``"bfloat16"``; ``None`` in files that do
        not record it).
    """

    params: dict[str, Any]
    device: str
    solver_name: str
    label_types: list
    n_features: int | list[int]
    seed: int | None
    solver_state: dict[str, Any]
    offset: tuple[int, int] | None = None
    precision: str | None = None


class _CebraOffsetRecord:
    """Stand-in for ``cebra.data.datatypes.Offset`` while unpickling (data only, no behaviour)."""

    def __init__(self) -> None:
        self.left: Any = None
        self.right: Any = None

    def __setstate__(self, state: Any) -> None:
        # pickled with __slots__: (None, {"left": l, "right": r}); without: {"left": l, ...}
        if isinstance(state, tuple):
            merged: dict[str, Any] = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            state = merged
        if isinstance(state, dict):
            self.left = state.get("left")
            self.right = state.get("right")


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------


def write_model_file(state: ModelState, filename: Any, backend: str = "sklearn") -> None:
    """Write ``state`` to ``filename`` in our versioned format.

    Parameters
    ----------
    state : ModelState
        A fitted estimator's state (``CEBRA.to_state``).
    filename : str or os.PathLike
        Destination; replaced atomically if it exists.
    backend : str
        Only ``"sklearn"`` (the reference's default); pickling whole objects is not supported
        because such files cannot be loaded safely.

    Raises
    ------
    ValueError
        If the backend is not ``"sklearn"``.
    """
    if backend != "sklearn":
        raise ValueError(
            f"backend={backend!r} is not supported: only 'sklearn' files (plain data, loadable "
            "without executing code) are written."
        )
    write_atomically(Path(filename), _payload(state))


def _payload(model: ModelState) -> dict[str, Any]:
    import sklearn
    import torch

    import napari_cebra

    state = {
        "device_": model.device,
        "offset_": None if model.offset is None else list(model.offset),
        "solver_name_": model.solver_name,
        "label_types_": _encode_label_types(model.label_types),
        "n_features_": model.n_features,
        "n_features_in_": model.n_features,
        "num_sessions_": len(model.n_features) if isinstance(model.n_features, list) else None,
        "seed_": model.seed,
        "precision_": model.precision,
    }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "params": _plain(model.params),
        "state": _plain(state),
        "state_dict": _plain(_on_cpu(model.solver_state)),
        "metadata": {
            "napari_cebra_version": napari_cebra.__version__,
            "torch_version": str(torch.__version__),
            "numpy_version": np.__version__,
            "sklearn_version": sklearn.__version__,
        },
    }


def write_atomically(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file next to ``path``, then move it into place."""
    import torch

    replace_file_atomically(path, lambda handle: torch.save(payload, handle))


def _plain(value: Any) -> Any:
    """Convert numpy scalars/arrays and version strings to plain Python values, recursively."""
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, str):
        return str(value)
    return value


def _on_cpu(value: Any) -> Any:
    """Move every tensor of a nested structure to the CPU."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(item) for item in value)
    return value


def _encode_label_types(label_types: list) -> list:
    """``(np.dtype, shape)`` pairs → ``[dtype string, [shape]]`` (nested lists kept)."""
    encoded = []
    for entry in label_types:
        if isinstance(entry, list):
            encoded.append(_encode_label_types(entry))
        else:
            dtype, shape = entry
            encoded.append([np.dtype(dtype).str, [int(size) for size in shape]])
    return encoded


def _decode_label_types(label_types: Any) -> list:
    """Inverse of :func:`_encode_label_types`; also accepts the reference's tuples."""
    decoded = []
    for entry in label_types or []:
        if isinstance(entry, list) and entry and isinstance(entry[0], (list, tuple)):
            decoded.append(_decode_label_types(entry))
        else:
            dtype, shape = entry
            decoded.append((np.dtype(_dtype_spec(dtype)), tuple(int(size) for size in shape)))
    return decoded


def _dtype_spec(dtype: Any) -> Any:
    return dtype.str if hasattr(dtype, "str") and not isinstance(dtype, str) else dtype


# ----------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------


def read_model_file(
    filename: Any, backend: str = "auto", weights_only: bool | None = None, **kwargs: Any
) -> ModelState:
    """Read a model file written by ``CEBRA.save`` (ours) or by ``cebra`` 0.6.x.

    Parameters
    ----------
    filename : str or os.PathLike
        The model file (``~`` is expanded).
    backend : {"auto", "sklearn"}
        Accepted for compatibility with the reference; both read the same formats.
    weights_only : bool, optional
        Accepted for compatibility; files are always read without executing code, and
        ``weights_only=False`` raises a ``ValueError``.
    **kwargs
        Not supported (``TypeError``), as loading options cannot change what is read.

    Returns
    -------
    ModelState
        The file's state, for ``CEBRA.from_state`` (which checks the weights against the
        architecture).

    Raises
    ------
    ValueError
        If the file is corrupt (a checksum does not match), truncated, not a model file, written
        by a newer or an invalid format version, holds tensors a model file does not have, an
        unknown solver name or invalid input widths, or contains pickled objects other than plain
        data (nothing is executed).
    FileNotFoundError
        If the file does not exist.
    """
    if backend not in ("auto", "sklearn"):
        raise NotImplementedError(f"Unsupported backend {backend!r}; use 'auto' or 'sklearn'.")
    if weights_only is False:
        raise ValueError(
            "weights_only=False is not supported: model files are always read without executing "
            "pickled code."
        )
    if kwargs:
        raise TypeError(f"Unexpected arguments for CEBRA.load: {', '.join(sorted(kwargs))}.")
    path = Path(filename).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {str(path)!r}.")
    payload = read_payload(path)
    if not isinstance(payload, dict):
        raise ValueError(
            f"{str(path)!r} is not a CEBRA model file: it holds a {type(payload).__name__}, not "
            "the dictionary CEBRA.save writes."
        )
    if payload.get("format") == FORMAT:
        _check_tensor_places(payload, path)
        return _from_ours(payload, path)
    if all(key in payload for key in _CEBRA_KEYS):
        _check_tensor_places(payload, path)
        return _from_cebra(payload, path)
    raise ValueError(
        f"{str(path)!r} is not a CEBRA model file: missing keys in data dictionary (found "
        f"{sorted(map(str, payload))[:10]}; expected a napari-cebra file or a cebra file with "
        f"{list(_CEBRA_KEYS)})."
    )


def read_payload(path: Path) -> Any:
    """``torch.load(weights_only=True)`` of a verified archive (:func:`verify_archive`) with the
    cebra stand-ins allowed; errors → ValueError."""
    import torch

    verify_archive(path)
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"Refusing to load {str(path)!r}: it contains pickled objects that are not plain "
            f"model data and could execute code; nothing was executed. Details: {error}"
        ) from None
    except FileNotFoundError:
        raise
    except Exception as error:  # garbage makes the unpickler fail in arbitrary ways
        raise ValueError(
            f"Cannot read {str(path)!r}: the file is corrupt, truncated or not a torch model "
            f"file ({type(error).__name__}: {error})."
        ) from error


def verify_archive(path: Path) -> None:
    """Check that ``path`` is an intact ``torch.save`` zip archive before it is unpickled.

    Every member must be stored uncompressed (``torch.save`` never compresses, so no member can
    be larger than the file) and match the CRC-32 checksum the archive records for it. Members
    are read in chunks: memory does not grow with the file.

    Raises
    ------
    ValueError
        Naming the file and the damaged member, for a file that is not a complete zip archive,
        a compressed member or a checksum mismatch.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            compressed = [m.filename for m in members if m.compress_type != zipfile.ZIP_STORED]
            if compressed:
                raise ValueError(
                    f"Refusing to load {str(path)!r}: its member {compressed[0]!r} is compressed, "
                    "which torch.save never does; the file was not written by CEBRA.save."
                )
            damaged = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(
            f"Cannot read {str(path)!r}: the file is corrupt, truncated or not a torch model "
            f"file (not a complete zip archive: {type(error).__name__}: {error})."
        ) from None
    if damaged is not None:
        raise ValueError(
            f"{str(path)!r} is damaged: the content of its member {damaged!r} does not match "
            "its CRC-32 checksum (the file was changed or corrupted after it was written)."
        )


def _check_tensor_places(payload: dict[str, Any], path: Path) -> None:
    """Refuse tensors anywhere but where a model file keeps them (see ``_TENSOR_PLACES``)."""
    import torch

    def visit(value: Any, keys: tuple[str, ...]) -> None:
        if isinstance(value, torch.Tensor):
            if not any(
                keys[: len(place)] == place and len(keys) == len(place) + depth
                for place, depth in _TENSOR_PLACES.items()
            ):
                raise ValueError(
                    f"{str(path)!r} holds an unknown tensor at {'.'.join(keys)!r} of shape "
                    f"{tuple(value.shape)}: a model file keeps tensors only in its weights, "
                    "criterion, optimizer state and loss history."
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(item, (*keys, str(key)))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(item, (*keys, str(index)))

    visit(payload, ())


def _safe_globals() -> list:
    """Classes a cebra 0.6.x file may contain, mapped to harmless stand-ins."""
    from torch.torch_version import TorchVersion

    dtype_classes = [
        getattr(np.dtypes, name)
        for name in dir(np.dtypes)
        if name.endswith("DType") and isinstance(getattr(np.dtypes, name), type)
    ]
    return [
        (_CebraOffsetRecord, "cebra.data.datatypes.Offset"),
        TorchVersion,
        np.dtype,
        *dtype_classes,
    ]


def _from_ours(payload: dict[str, Any], path: Path) -> ModelState:
    version = payload.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            f"{str(path)!r} is damaged: its format_version {version!r} is not a positive integer."
        )
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} has format_version {version!r}; this napari-cebra reads versions up "
            f"to {FORMAT_VERSION}. Update napari-cebra to load it."
        )
    for key in ("params", "state", "state_dict"):
        if not isinstance(payload.get(key), dict):
            raise ValueError(f"{str(path)!r} is damaged: its {key!r} entry is missing.")
    state = payload["state"]
    return _restore(
        path,
        params=payload["params"],
        device=state.get("device_"),
        solver_name=state.get("solver_name_"),
        label_types=state.get("label_types_"),
        n_features=state.get("n_features_in_"),
        seed=state.get("seed_"),
        solver_state=payload["state_dict"],
        precision=state.get("precision_"),
    )


def _from_cebra(payload: dict[str, Any], path: Path) -> ModelState:
    state, solver_state = payload["state"], payload["state_dict"]
    if not isinstance(state, dict) or not isinstance(solver_state, dict):
        raise ValueError(f"{str(path)!r} is damaged: 'state' or 'state_dict' is not a dictionary.")
    solver_name = state.get("solver_name_")
    solver_state = dict(solver_state)
    if solver_name == "single-session-hybrid" and isinstance(solver_state.get("model"), dict):
        solver_state["model"] = {
            key.removeprefix(_HYBRID_PREFIX): value for key, value in solver_state["model"].items()
        }
    return _restore(
        path,
        params=payload["args"],
        device=state.get("device_"),
        solver_name=solver_name,
        label_types=state.get("label_types_"),
        n_features=state.get("n_features_in_", state.get("n_features_")),
        seed=None,
        solver_state=solver_state,
    )


def _restore(
    path: Path,
    *,
    params: dict[str, Any],
    device: Any,
    solver_name: Any,
    label_types: Any,
    n_features: Any,
    seed: Any,
    solver_state: dict[str, Any],
    precision: Any = None,
) -> ModelState:
    """The state of a file's entries; an unknown solver or invalid widths are a ``ValueError``."""
    if solver_name not in _SOLVER_NAMES:
        raise ValueError(f"{str(path)!r} has an unknown solver_name_ {solver_name!r}.")
    if not _is_width(n_features):
        raise ValueError(f"{str(path)!r} has an invalid n_features_in_ {n_features!r}.")
    if not isinstance(params, dict):
        raise ValueError(f"{str(path)!r} is damaged: its parameters are not a dictionary.")
    try:
        label_types = _decode_label_types(label_types)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{str(path)!r} does not contain a usable {params.get('model_architecture')!r} model: "
            f"{type(error).__name__}: {error}"
        ) from None
    return ModelState(
        params=params,
        device=_usable_device(device, path),
        solver_name=solver_name,
        label_types=label_types,
        n_features=n_features,
        seed=seed,
        solver_state=solver_state,
        precision=precision if precision in ("float32", "bfloat16") else None,
    )


def _is_width(value: Any) -> bool:
    if isinstance(value, list):
        return len(value) > 0 and all(_is_width(item) for item in value)
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _usable_device(device: Any, path: Path) -> str:
    """The saved device if it exists here, else the CPU (with a warning)."""
    from napari_cebra.core.device import resolve_device

    saved = str(device) if device is not None else "cpu"
    try:
        return resolve_device(saved)
    except ValueError:
        warnings.warn(
            f"{str(path)!r} was trained on {saved!r}, which is not available here; loading it on "
            "the CPU.",
            UserWarning,
            stacklevel=4,
        )
        return "cpu"
