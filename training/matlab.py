"""A reader (and a small writer) for MATLAB level-5 ``.mat`` files: enough for MatConvNet's models, without SciPy.

The format (MathWorks, "MAT-File Format", level 5): a 128-byte header whose
last two bytes give the byte order, then data elements, each an 8-byte tag
(type, byte count; or the 4-byte "small element" form) and its data padded to
8 bytes. A variable is a ``miMATRIX`` element (optionally inside a
zlib-compressed ``miCOMPRESSED`` one) holding array flags, dimensions, a name
and, by class, numbers (column-major), characters, cells or structs.

Values are returned as: numeric arrays → ``numpy.ndarray`` with MATLAB's
dimensions (at least 2, as MATLAB has them; column-major order undone),
char arrays → ``str``, cell arrays → ``numpy`` object arrays of the cells,
struct arrays → object arrays of ``dict`` (field name → value). Level 7.3
files (HDF5) are not level 5 and are refused with ``MatFileError``.

``save`` writes the same structures back (little-endian): ``dict`` → 1x1
struct, ``Cell`` → 1xN cell, ``str`` → char row, float32/float64 arrays →
single/double matrices, ``None`` → an empty double; enough to write a
MatConvNet-layout network with other weights (benchmarks/training_step.py).
"""
import struct
import zlib
from typing import Dict, Sequence

import numpy as np

_NUMERIC_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MI_MATRIX, _MI_COMPRESSED, _MI_UTF8, _MI_UTF16, _MI_UTF32 = 14, 15, 16, 17, 18
_CELL, _STRUCT, _OBJECT, _CHAR, _SPARSE = 1, 2, 3, 4, 5
# What the writer uses besides: element types and the array classes of single and double matrices.
_MI_INT8, _MI_UINT16, _MI_INT32, _MI_UINT32, _MI_SINGLE, _MI_DOUBLE = 1, 4, 5, 6, 7, 9
_DOUBLE_CLASS, _SINGLE_CLASS = 6, 7
_CLASS_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}


class MatFileError(ValueError):
    """The file is not a MATLAB level-5 file this reader understands; the message is one line."""


class _Reader:
    def __init__(self, data: bytes, order: str):
        self.data, self.order, self.position = data, order, 0

    def done(self) -> bool:
        return self.position >= len(self.data)

    def element(self):
        """(type, payload bytes) of the next data element, the position moved past its padding."""
        if self.position + 8 > len(self.data):
            raise MatFileError("truncated data element")
        first = int(np.frombuffer(self.data, self.order + "u4", 1, self.position)[0])
        if first >> 16:  # small element: type and count in one word, data in the next four bytes
            kind, count = first & 0xFFFF, first >> 16
            payload = self.data[self.position + 4:self.position + 4 + count]
            self.position += 8
            return kind, payload
        count = int(np.frombuffer(self.data, self.order + "u4", 1, self.position + 4)[0])
        start = self.position + 8
        if start + count > len(self.data):
            raise MatFileError("truncated data element")
        payload = self.data[start:start + count]
        # Compressed elements are not padded; every other element is, to 8 bytes.
        self.position = start + (count if first == _MI_COMPRESSED else (count + 7) // 8 * 8)
        return first, payload

    def numbers(self, kind: int, payload: bytes) -> np.ndarray:
        if kind not in _NUMERIC_TYPES:
            raise MatFileError(f"unexpected data type {kind} where numbers were expected")
        return np.frombuffer(payload, self.order + _NUMERIC_TYPES[kind])


def _text(kind: int, payload: bytes, order: str) -> str:
    if kind in (1, 2, _MI_UTF8):
        return payload.decode("utf-8", "replace")
    if kind in (4, _MI_UTF16):
        return payload.decode("utf-16-le" if order == "<" else "utf-16-be", "replace")
    if kind in (6, _MI_UTF32):
        return payload.decode("utf-32-le" if order == "<" else "utf-32-be", "replace")
    raise MatFileError(f"unexpected character data type {kind}")


def _matrix(payload: bytes, order: str):
    """(name, value) of one miMATRIX element's payload."""
    if not payload:  # an empty matrix may have no subelements at all
        return "", np.zeros((0, 0))
    reader = _Reader(payload, order)
    flags = reader.numbers(*reader.element())
    array_class, is_complex = int(flags[0]) & 0xFF, bool(int(flags[0]) & 0x0800)
    dims = tuple(int(d) for d in reader.numbers(*reader.element()))
    name_kind, name_bytes = reader.element()
    name = name_bytes.decode("ascii", "replace")
    count = int(np.prod(dims)) if dims else 0
    if array_class in _CLASS_DTYPES:
        real = reader.numbers(*reader.element()).astype(_CLASS_DTYPES[array_class])
        if is_complex:
            real = real + 1j * reader.numbers(*reader.element())
        return name, real.reshape(dims, order="F")
    if array_class == _CHAR:
        if count == 0:
            return name, ""
        kind, data = reader.element()
        codes = reader.numbers(kind, data) if kind in (2, 4, 6) and len(dims) == 2 and dims[0] > 1 else None
        if codes is not None:  # a char matrix: rows of text
            rows = codes.reshape(dims, order="F")
            return name, "\n".join("".join(map(chr, row)) for row in rows)
        return name, _text(kind, data, order)
    if array_class == _CELL:
        cells = np.empty(count, dtype=object)
        for i in range(count):
            kind, data = reader.element()
            if kind != _MI_MATRIX:
                raise MatFileError(f"cell element of data type {kind}")
            cells[i] = _matrix(data, order)[1]
        return name, cells.reshape(dims, order="F")
    if array_class in (_STRUCT, _OBJECT):
        if array_class == _OBJECT:
            reader.element()  # the class name
        length = int(reader.numbers(*reader.element())[0])
        raw = reader.element()[1]
        fields = [raw[i:i + length].split(b"\0", 1)[0].decode("ascii", "replace") for i in range(0, len(raw), length)]
        structs = np.empty(count, dtype=object)
        for i in range(count):
            record = {}
            for field in fields:
                kind, data = reader.element()
                if kind != _MI_MATRIX:
                    raise MatFileError(f"struct field {field!r} of data type {kind}")
                record[field] = _matrix(data, order)[1]
            structs[i] = record
        return name, structs.reshape(dims, order="F")
    if array_class == _SPARSE:
        raise MatFileError(f"variable {name!r} is a sparse matrix, which this reader does not read")
    raise MatFileError(f"variable {name!r} has an unknown MATLAB class {array_class}")


def load(path: str) -> Dict[str, object]:
    """Every variable of a level-5 ``.mat`` file, by name."""
    with open(path, "rb") as file:
        data = file.read()
    if len(data) < 128 or data[126:128] not in (b"IM", b"MI"):
        if data[:8] == b"\x89HDF\r\n\x1a\n" or b"MATLAB 7.3" in data[:128]:
            raise MatFileError(f"{path} is a MATLAB 7.3 (HDF5) file; save it with -v7 or -v6, or use the "
                               "original download")
        raise MatFileError(f"{path} is not a MATLAB level-5 .mat file")
    order = "<" if data[126:128] == b"IM" else ">"
    reader = _Reader(data[128:], order)
    variables = {}
    while not reader.done():
        kind, payload = reader.element()
        if kind == _MI_COMPRESSED:
            try:
                payload = zlib.decompress(payload)
            except zlib.error as error:
                raise MatFileError(f"{path}: a compressed variable is corrupt ({error})") from None
            kind, payload = _Reader(payload, order).element()
        if kind != _MI_MATRIX:
            continue  # not a variable (e.g. padding or a subsystem block)
        name, value = _matrix(payload, order)
        variables[name] = value
    return variables


# --------------------------------------------------------------------------- writing


class Cell(list):
    """A MATLAB cell array to write (a row: 1 x len)."""


def _element(kind: int, payload: bytes) -> bytes:
    """A data element: tag (type, byte count) and the payload padded to 8 bytes."""
    return struct.pack("<II", kind, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def _matrix_element(value, name: str = "") -> bytes:
    """One miMATRIX element for a value (module docstring); numeric data column-major."""
    def header(array_class: int, dims: Sequence[int]) -> bytes:
        return (_element(_MI_UINT32, struct.pack("<II", array_class, 0))
                + _element(_MI_INT32, struct.pack(f"<{len(dims)}i", *dims))
                + _element(_MI_INT8, name.encode("ascii")))

    if isinstance(value, dict):
        length = max(len(key) for key in value) + 1
        names = b"".join(key.encode("ascii").ljust(length, b"\0") for key in value)
        body = header(_STRUCT, (1, 1)) + _element(_MI_INT32, struct.pack("<i", length)) + _element(_MI_INT8, names)
        body += b"".join(_matrix_element(field) for field in value.values())
    elif isinstance(value, Cell):
        body = header(_CELL, (1, len(value))) + b"".join(_matrix_element(item) for item in value)
    elif isinstance(value, str):
        body = header(_CHAR, (1, len(value))) + _element(_MI_UINT16, value.encode("utf-16-le"))
    elif value is None:
        body = header(_DOUBLE_CLASS, (0, 0)) + _element(_MI_DOUBLE, b"")
    else:
        array = np.asarray(value)
        if array.dtype not in (np.float32, np.float64):
            raise TypeError(f"save writes float32/float64 arrays, not {array.dtype}")
        dims = array.shape if array.ndim >= 2 else (1, array.size)
        single = array.dtype == np.float32
        data = np.asarray(array, "<f4" if single else "<f8").reshape(dims).tobytes(order="F")
        body = (header(_SINGLE_CLASS if single else _DOUBLE_CLASS, dims)
                + _element(_MI_SINGLE if single else _MI_DOUBLE, data))
    return _element(_MI_MATRIX, body)


def save(path: str, variables: Dict[str, object], compress: bool = False) -> None:
    """A MATLAB level-5 file of ``variables`` (module docstring); ``compress``: each one zlib-compressed."""
    text = b"MATLAB 5.0 MAT-file, written by training/matlab.py"
    header = text.ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    with open(path, "wb") as file:
        file.write(header)
        for name, value in variables.items():
            element = _matrix_element(value, name)
            if compress:  # miCOMPRESSED: a zlib stream of the element, not padded
                packed = zlib.compress(element)
                element = struct.pack("<II", _MI_COMPRESSED, len(packed)) + packed
            file.write(element)
