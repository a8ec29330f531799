"""Reading pickles without running code and without letting them exhaust memory.

A pickle can run arbitrary code when it is loaded, so the package never calls
:func:`pickle.load` or :func:`joblib.load`. :func:`restricted_load` admits only numpy arrays,
dtypes, numpy scalars and plain containers, reads joblib's array records itself and bounds the
memory a pickle can make it build (:data:`UNPICKLE_ALLOWANCE_BYTES`). Pickles of plain values only
(PyTables' attributes) are decoded by :func:`read_literal_pickle` without any unpickler.
"""

from __future__ import annotations

import codecs
import collections
import gzip
import io
import math
import os
import pathlib
import pickle
import pickletools
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NoReturn

import numpy as np

UNPICKLE_ALLOWANCE_BYTES = 64 << 20
"""Bytes any pickle may build (arrays, strings, containers), however small it is."""
UNPICKLE_BYTES_PER_INPUT_BYTE = 4
"""Bytes a pickle may build per byte read from it, on top of :data:`UNPICKLE_ALLOWANCE_BYTES`.

An honest pickle builds about one byte per byte it holds. :func:`restricted_load` refuses a pickle
once the objects its calls create (arrays, bytes, sets ...) exceed this limit, and refuses the
result if copying it out in full (every shared object counted at every reference, as
``np.asarray`` of nested lists does) would exceed it.
"""
_CHUNK_BYTES = 1 << 20


# --- restricted unpickling ----------------------------------------------------------------------


class _JoblibArrayRecord:
    """Stands in for ``joblib.numpy_pickle.NumpyArrayWrapper``: holds shape, dtype and order."""


def _numpy_core_attribute(submodule: str, name: str) -> Any:
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core to numpy._core
    return getattr(getattr(core, submodule), name)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,  # only passed to _reconstruct; never called
        ("numpy", "dtype"): np.dtype,
        ("numpy", "memmap"): np.ndarray,  # only compared against by joblib; never instantiated
        ("joblib.numpy_pickle", "NumpyArrayWrapper"): _JoblibArrayRecord,
        ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): bytearray,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = _numpy_core_attribute(
            "multiarray", "_reconstruct"
        )
        allowed[(f"{package}.multiarray", "scalar")] = _numpy_core_attribute("multiarray", "scalar")
        allowed[(f"{package}.numeric", "_frombuffer")] = _numpy_core_attribute(
            "numeric", "_frombuffer"
        )
    for name in ("Path", "PosixPath", "PurePosixPath"):  # suite2p ops hold paths: inert here
        allowed[("pathlib", name)] = pathlib.PurePosixPath
    for name in ("WindowsPath", "PureWindowsPath"):
        allowed[("pathlib", name)] = pathlib.PureWindowsPath
    return allowed


def _refuse(message: str) -> NoReturn:
    raise pickle.UnpicklingError(message)


def _element_count(shape: Any) -> int:
    shape = (shape,) if isinstance(shape, int) else shape
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        _refuse(f"malformed array shape of type {type(shape).__name__}")
    return math.prod(shape)


def _plain_dtype(dtype: Any) -> np.dtype:
    """``dtype`` if it is unstructured and exactly what numpy builds from its name.

    A dtype's pickled state can claim flags (e.g. "holds objects") its layout does not have,
    which would make numpy read raw bytes as object pointers; such states are refused.
    """
    if not isinstance(dtype, np.dtype) or dtype.names is not None or dtype.subdtype is not None:
        _refuse(f"refused dtype {dtype!r}: only plain (unstructured) dtypes are read")
    canonical = np.dtype(dtype.str)
    if (dtype.flags, dtype.itemsize, dtype.alignment) != (
        canonical.flags,
        canonical.itemsize,
        canonical.alignment,
    ):
        _refuse(f"refused a dtype whose pickled state contradicts {canonical}")
    return dtype


def _array_bytes(shape: Any, dtype: Any) -> int:
    """Bytes an array of ``shape`` and ``dtype`` takes (at least one per element)."""
    return _element_count(shape) * max(_plain_dtype(np.dtype(dtype)).itemsize, 1)


def _cost_of_reconstruct(args: tuple) -> int:
    subtype, shape, dtype = args
    if subtype is not np.ndarray:
        _refuse(f"refused to reconstruct a {subtype!r}: only numpy.ndarray is built")
    return _array_bytes(shape, dtype)


def _cost_of_frombuffer(args: tuple) -> int:
    _, dtype, shape, _ = args
    return _array_bytes(shape, dtype)


def _cost_of_scalar(args: tuple) -> int:
    return _plain_dtype(args[0]).itemsize


def _cost_of_dtype(args: tuple) -> int:
    if len(args) != 3 or not isinstance(args[0], str) or not args[2]:
        _refuse("refused numpy.dtype(...) other than numpy's own (name, align, copy=True)")
    return 0


def _cost_of_latin1(args: tuple) -> int:
    text, encoding = args
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        _refuse("refused _codecs.encode(...) other than of text to latin-1 bytes")
    return len(text)


def _cost_of_items(args: tuple) -> int:
    return 16 * len(args[0]) if args else 0


def _cost_of_complex(args: tuple) -> int:
    if not all(isinstance(part, (int, float)) for part in args):
        _refuse("refused complex(...) of anything but numbers")
    return 32


def _cost_of_bytearray(args: tuple) -> int:
    if not args:
        return 0
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return len(args[0])
    if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
        return len(args[0])
    _refuse("refused bytearray(...) of anything but bytes (a number would allocate that many)")


def _cost_of_path(args: tuple) -> int:
    if not all(isinstance(part, str) for part in args):
        _refuse("refused a path built from anything but text")
    return sum(map(len, args))


def _cost_of_record(args: tuple) -> int:
    if args:
        _refuse("refused arguments to a joblib array record")
    return 0


def _call_costs() -> list[tuple[Any, Callable[[tuple], int]]]:
    """Each callable a pickle may call, with what a call costs in bytes (checked first)."""
    return [
        (_numpy_core_attribute("multiarray", "_reconstruct"), _cost_of_reconstruct),
        (_numpy_core_attribute("multiarray", "scalar"), _cost_of_scalar),
        (_numpy_core_attribute("numeric", "_frombuffer"), _cost_of_frombuffer),
        (np.dtype, _cost_of_dtype),
        (codecs.encode, _cost_of_latin1),
        (collections.OrderedDict, _cost_of_items),
        (set, _cost_of_items),
        (frozenset, _cost_of_items),
        (complex, _cost_of_complex),
        (bytearray, _cost_of_bytearray),
        (pathlib.PurePosixPath, _cost_of_path),
        (pathlib.PureWindowsPath, _cost_of_path),
        (_JoblibArrayRecord, _cost_of_record),
    ]


def _array_state_bytes(state: Any) -> int:
    """Bytes ``ndarray.__setstate__(state)`` builds; refuses states numpy would misread.

    numpy trusts the state: an object array whose item list is shorter than its shape reads past
    the list (a crash), so the lengths are checked here.
    """
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        _refuse(f"malformed array state of type {type(state).__name__}")
    shape, dtype, _, data = state[-4:]
    count = _element_count(shape)
    dtype = _plain_dtype(dtype)
    if dtype.hasobject:
        if not isinstance(data, list) or len(data) != count:
            _refuse(f"an object array of shape {shape} needs a list of {count} items")
    elif not isinstance(data, (bytes, bytearray, str)) or len(data) != count * dtype.itemsize:
        _refuse(f"array data does not match shape {shape} and dtype {dtype}")
    return count * max(dtype.itemsize, 1)


class _CountingReader:
    """A binary stream read in chunks of at most 1 MiB, counting the bytes delivered.

    ``read(n)`` never allocates more than has arrived, so a length field claiming gigabytes costs
    nothing until the bytes are really there.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.consumed = 0

    def read(self, n_bytes: int) -> bytes:
        chunks, remaining = [], n_bytes
        while remaining > 0:
            chunk = self._stream.read(min(remaining, _CHUNK_BYTES))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        self.consumed += len(data)
        return data

    def readline(self) -> bytes:
        line = self._stream.readline()
        self.consumed += len(line)
        return line


class _Budget:
    """Bytes built while unpickling, against a limit that grows with the bytes read."""

    def __init__(self, reader: _CountingReader) -> None:
        self.reader = reader
        self.built = 0

    def limit(self) -> int:
        return UNPICKLE_BYTES_PER_INPUT_BYTE * self.reader.consumed + UNPICKLE_ALLOWANCE_BYTES

    def charge(self, n_bytes: int, what: str) -> None:
        self.built += n_bytes
        if self.built > self.limit():
            _refuse(
                f"{what} would bring what the pickle builds to {self.built} bytes, more than the "
                f"{self.limit()} allowed for {self.reader.consumed} bytes read"
            )


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that only builds numpy arrays, dtypes, scalars and plain containers.

    Any other global (a function or class a malicious pickle would call) raises
    :class:`pickle.UnpicklingError`, and so do calls of allowed globals with arguments they would
    misuse (``bytearray(10**9)``, ``numpy.ndarray(shape)``) and calls, array states or joblib
    records that would take the bytes built past :data:`UNPICKLE_BYTES_PER_INPUT_BYTE` per byte
    read plus :data:`UNPICKLE_ALLOWANCE_BYTES`. joblib array records are replaced by the arrays
    whose bytes follow them in the file, as ``joblib.load`` does.
    """

    dispatch = pickle._Unpickler.dispatch.copy()
    _allowed = _allowed_globals()
    _calls = _call_costs()

    def __init__(self, file: IO[bytes], budget: _Budget | None = None) -> None:
        reader = file if isinstance(file, _CountingReader) else _CountingReader(file)
        super().__init__(reader)
        self._raw = reader
        self.budget = budget or _Budget(reader)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: only numpy arrays and plain containers "
                "are allowed"
            ) from None

    def _call(self, func: Any, args: Any, new: bool = False) -> Any:
        """``func(*args)`` (``func.__new__(func, *args)`` if ``new``) once allowed and paid for."""
        cost = next((cost for known, cost in self._calls if known is func), None)
        if cost is None or not isinstance(args, tuple) or (new and not isinstance(func, type)):
            _refuse(f"refused to call {getattr(func, '__name__', type(func).__name__)}")
        self.budget.charge(cost(args), f"calling {func.__name__}")
        result = func.__new__(func, *args) if new else func(*args)
        return _plain_dtype(result) if func is np.dtype else result

    def _instantiate(self, klass: Any, args: list) -> None:  # the INST and OBJ opcodes
        self.append(self._call(klass, tuple(args)))

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def _load_newobj(self) -> None:
        args = self.stack.pop()
        self.append(self._call(self.stack.pop(), args, new=True))

    def _load_newobj_ex(self) -> None:
        kwargs, args = self.stack.pop(), self.stack.pop()
        if kwargs:
            _refuse("refused keyword arguments to a constructor")
        self.append(self._call(self.stack.pop(), args, new=True))

    def _load_bytearray8(self) -> None:
        (length,) = struct.unpack("<Q", self.read(8))
        data = self.read(length)  # arrives in chunks: nothing is allocated ahead of the data
        if len(data) != length:
            _refuse(f"a bytearray of {length} bytes ends after {len(data)}")
        self.budget.charge(length, "a bytearray")
        self.append(bytearray(data))

    def _load_build(self) -> None:
        target, state = self.stack[-2], self.stack[-1]
        if isinstance(target, np.ndarray):
            self.budget.charge(_array_state_bytes(state), "an array")
        elif not isinstance(target, (np.dtype, _JoblibArrayRecord)):
            _refuse(f"refused to set the state of a {type(target).__name__}")
        pickle._Unpickler.load_build(self)
        if isinstance(target, np.dtype):
            _plain_dtype(target)
        elif isinstance(target, _JoblibArrayRecord):
            self.stack.append(_read_joblib_array(self.stack.pop(), self._raw, self.budget))

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8
    dispatch[pickle.BUILD[0]] = _load_build


def _read_exactly(file: IO[bytes], n_bytes: int) -> bytearray:
    """``n_bytes`` from ``file``, grown as they arrive (a wrong length costs nothing up front)."""
    data = bytearray()
    while len(data) < n_bytes:
        chunk = file.read(min(n_bytes - len(data), 64 * _CHUNK_BYTES))
        if not chunk:
            raise pickle.UnpicklingError(f"array data ends early: {len(data)} of {n_bytes} bytes")
        data += chunk
    return data


def _read_joblib_array(record: _JoblibArrayRecord, file: IO[bytes], budget: _Budget) -> Any:
    """Read the bytes of one joblib array record from the current position of ``file``."""
    state = vars(record)
    try:
        dtype, shape, order = np.dtype(state["dtype"]), tuple(state["shape"]), state["order"]
    except (KeyError, TypeError) as error:
        raise pickle.UnpicklingError(f"malformed joblib array record {sorted(state)}") from error
    if _plain_dtype(dtype).hasobject:  # a nested pickle stream: read it with the same limits
        return RestrictedUnpickler(file, budget).load()
    if state.get("numpy_array_alignment_bytes") is not None:
        padding = int.from_bytes(_read_exactly(file, 1), "little")
        _read_exactly(file, padding)
    count = _element_count(shape)
    data = _read_exactly(file, count * dtype.itemsize)
    budget.charge(len(data), "a joblib array")
    flat = np.frombuffer(data, dtype=dtype, count=count)
    return flat.reshape(shape[::-1]).T if order == "F" else flat.reshape(shape)


def _own_bytes(node: Any) -> int:
    if isinstance(node, np.ndarray):
        return node.size * max(node.itemsize, 1)
    if isinstance(node, (str, bytes, bytearray)):
        return len(node)
    if isinstance(node, (list, tuple, set, frozenset)):
        return 8 * len(node)
    if isinstance(node, dict):
        return 16 * len(node)
    return 8


def _children(node: Any) -> list[Any]:
    if isinstance(node, np.ndarray):
        return list(node.ravel()) if node.dtype.hasobject else []
    if isinstance(node, dict):
        return [*node.keys(), *node.values()]
    if isinstance(node, (list, tuple, set, frozenset)):
        return list(node)
    return []


def _expanded_bytes(root: Any, limit: int) -> int:
    """Bytes of ``root`` with each shared object counted at every reference, capped at limit + 1.

    This is what copying it out costs (``np.asarray`` of lists that share sub-lists builds every
    repetition). Each object is visited once, so the walk takes time in proportion to the pickle.
    Reference cycles would expand without end and are refused.
    """
    sizes: dict[int, int] = {}
    open_ids: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_ids.discard(key)
            total = _own_bytes(node) + sum(sizes[id(child)] for child in _children(node))
            sizes[key] = min(total, limit + 1)
        elif key not in sizes:
            if key in open_ids:
                _refuse("the pickle holds a reference cycle")
            open_ids.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    return sizes[id(root)]


def _load_within_budget(stream: IO[bytes]) -> Any:
    unpickler = RestrictedUnpickler(stream)
    content = unpickler.load()
    limit = unpickler.budget.limit()
    if _expanded_bytes(content, limit) > limit:
        _refuse(
            f"its content expands to more than {limit} bytes once shared references are "
            f"copied out, the limit for {unpickler.budget.reader.consumed} bytes read"
        )
    return content


def _open_maybe_compressed(handle: IO[bytes]) -> IO[bytes]:
    """The decompressed stream of a gzip- or zlib-compressed joblib file, else ``handle``."""
    magic = handle.read(2)
    handle.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=handle)
    if magic[:1] == b"\x78":  # zlib header; a pickle starts with 0x80 (PROTO)
        return io.BytesIO(zlib.decompress(handle.read()))
    return handle


_UNPICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    OSError,
    AttributeError,
    IndexError,
    KeyError,
    struct.error,
    OverflowError,
    zlib.error,
)


def restricted_load(file: str | os.PathLike | IO[bytes]) -> Any:
    """Load a pickle, joblib file or object ``.npy`` payload without executing code.

    Parameters
    ----------
    file : path-like or binary file
        A pickle or a (possibly gzip/zlib-compressed) joblib file (``~`` is expanded), or an open
        binary file positioned at the start of a pickle stream.

    Returns
    -------
    object
        The unpickled object (numpy arrays, dicts, lists, tuples, numbers, strings).

    Raises
    ------
    ValueError
        The file references anything else (e.g. a function, as malicious pickles do), asks for
        more memory than :data:`UNPICKLE_BYTES_PER_INPUT_BYTE` per byte it holds plus
        :data:`UNPICKLE_ALLOWANCE_BYTES`, or is broken.
    """
    if isinstance(file, (str, os.PathLike)):
        file = Path(file).expanduser()
        if not file.is_file():
            raise FileNotFoundError(f"No such file: {file}")
    name = getattr(file, "name", file)
    try:
        if isinstance(file, Path):
            with open(file, "rb") as handle:
                return _load_within_budget(_open_maybe_compressed(handle))
        return _load_within_budget(file)
    except _UNPICKLE_ERRORS as error:
        raise ValueError(f"cannot load {name!s} safely: {error}") from error


# --- pickles of plain values, decoded without unpickling ----------------------------------------

_LITERAL_OPCODES = frozenset(
    {
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
        "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
    }
)  # fmt: skip
_CONSTANT_OPCODES = {
    "NONE": None,
    "NEWTRUE": True,
    "NEWFALSE": False,
    "EMPTY_LIST": list,
    "EMPTY_DICT": dict,
    "EMPTY_TUPLE": tuple,
}
_PUT_OPCODES = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_GET_OPCODES = frozenset({"GET", "BINGET", "LONG_BINGET"})
_MARKED_OPCODES = frozenset({"TUPLE", "LIST", "DICT", "APPENDS", "SETITEMS", "POP_MARK"})


class _LiteralPickle:
    """Interprets the opcodes of a pickle that holds only literal values (see read_literal_pickle)."""

    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}

    def run(self, data: bytes) -> Any:
        for opcode, argument, _ in pickletools.genops(data):
            if opcode.name == "STOP":
                return self.stack.pop()
            self.step(opcode.name, argument)
        raise ValueError("the pickle has no STOP opcode")

    def step(self, name: str, argument: Any) -> None:
        if name in _LITERAL_OPCODES:
            self.stack.append(argument)
        elif name in _CONSTANT_OPCODES:
            value = _CONSTANT_OPCODES[name]
            self.stack.append(value() if callable(value) else value)
        elif name in _PUT_OPCODES:
            self.memo[len(self.memo) if argument is None else argument] = self.stack[-1]
        elif name in _GET_OPCODES:
            self.stack.append(self.memo[argument])
        elif name == "MARK":
            self.marks.append(len(self.stack))
        elif name in _MARKED_OPCODES:
            self.collect(name)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(name[-1])
            if len(self.stack) < count:
                self.fail(f"{name} on a stack of {len(self.stack)}")
            items = tuple(self.stack[-count:])
            del self.stack[-count:]
            self.stack.append(items)
        elif name in ("APPEND", "SETITEM", "POP", "DUP", "PROTO", "FRAME"):
            self.simple(name)
        else:
            raise ValueError(
                f"refused to load opcode {name}: only literal values (text, numbers, lists, "
                "tuples, dicts) are decoded, nothing is imported or called"
            )

    def collect(self, name: str) -> None:
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        if name == "TUPLE":
            self.stack.append(tuple(items))
        elif name == "LIST":
            self.stack.append(items)
        elif name == "DICT":
            self.stack.append(dict(zip(items[::2], items[1::2], strict=True)))
        elif name == "APPENDS":
            self.target(list).extend(items)
        elif name == "SETITEMS":
            self.target(dict).update(zip(items[::2], items[1::2], strict=True))

    def simple(self, name: str) -> None:
        if name == "APPEND":
            value = self.stack.pop()
            self.target(list).append(value)
        elif name == "SETITEM":
            value, key = self.stack.pop(), self.stack.pop()
            self.target(dict)[key] = value
        elif name == "POP":
            self.stack.pop()
        elif name == "DUP":
            self.stack.append(self.stack[-1])

    def target(self, kind: type) -> Any:
        if not self.stack or type(self.stack[-1]) is not kind:
            self.fail(f"adding items to something other than a {kind.__name__}")
        return self.stack[-1]

    def fail(self, what: str) -> NoReturn:
        raise ValueError(f"malformed pickle ({what})")


def read_literal_pickle(data: bytes, name: str) -> Any:
    """Decode a pickle that holds only plain values, without unpickling it.

    The opcodes are parsed by :func:`pickletools.genops` and interpreted here. Only opcodes that
    push text, bytes, numbers, ``None`` and booleans or build lists, tuples and dicts are accepted;
    one that would import or call anything (``GLOBAL``, ``REDUCE``, ``BUILD`` ...) is refused, so
    nothing in ``data`` can run. The result holds at most one reference per opcode.

    Parameters
    ----------
    data : bytes
        The pickle (PyTables stores non-array attributes this way, protocol 0).
    name : str
        What ``data`` is, for error messages (e.g. ``"'video.h5': values_block_0_kind"``).

    Raises
    ------
    ValueError
        A refused opcode (the message says "refused to load opcode ...") or a malformed pickle.
    """
    try:
        return _LiteralPickle().run(data)
    except (ValueError, TypeError, IndexError, KeyError) as error:
        raise ValueError(f"cannot read {name} without unpickling: {error}") from error
