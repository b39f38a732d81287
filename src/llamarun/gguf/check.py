"""Checks a GGUF file before llama.cpp sees it, and reads its facts without llama.cpp.

The header is read by our own bounded parser: every count, string length,
array length, tensor dimension and offset is checked against the file size
*before* anything is read or allocated, so a hostile count such as 2**63 is a
:class:`~llamarun.errors.GGUFFormatError` naming the file, never an
allocation or a crash.  Only the header is read (never the tensor data), so a
check takes milliseconds even for multi-gigabyte files.  The ``gguf`` package
provides the type tables (value types, tensor types and their block sizes,
file types).
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import IO, Any

from ..errors import GGUFFormatError, ModelLoadError
from .info import ArraySummary, GGUFInfo, TensorInfo

__all__ = ["check_gguf"]

_MAGIC = b"GGUF"
_VERSIONS = (2, 3)
MAX_KV = 1 << 16  # key/value pairs in one file (real models have a few dozen)
MAX_TENSORS = 1 << 17
MAX_KEY_BYTES = 1 << 16
MAX_TENSOR_NAME = 63  # llama.cpp: strlen(name) < GGML_MAX_NAME (64)
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ALIGNMENT = 1 << 20
DEFAULT_ALIGNMENT = 32
KEEP_STRING = 1 << 20  # longest string value kept in the facts (longer ones are cut)
KEEP_ARRAY = 16  # string-array elements kept in the facts (the length is always kept)
KEEP_NUMBERS = 1024  # numeric-array elements kept (per-layer hyperparameters fit whole)
KEEP_TOTAL = 32 << 20  # bytes of values kept per file, and again of keys/names/entries, whatever its size
_INT64_MAX = (1 << 63) - 1

# GGUF value type -> struct format for the fixed-size scalar types
_SCALARS: dict[int, struct.Struct] = {
    0: struct.Struct("<B"), 1: struct.Struct("<b"), 2: struct.Struct("<H"), 3: struct.Struct("<h"),
    4: struct.Struct("<I"), 5: struct.Struct("<i"), 6: struct.Struct("<f"), 7: struct.Struct("<?"),
    10: struct.Struct("<Q"), 11: struct.Struct("<q"), 12: struct.Struct("<d"),
}
_STRING, _ARRAY = 8, 9
_TYPE_NAMES = {0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32", 6: "float32",
               7: "bool", 8: "string", 9: "array", 10: "uint64", 11: "int64", 12: "float64"}
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
_HEADER = struct.Struct("<4sIQQ")  # magic, version, n_tensors, n_kv
_BLOCK = 1 << 20
_MIN_KV_BYTES = 8 + 4 + 1  # key length, value type, smallest value
_MIN_TENSOR_BYTES = 8 + 4 + 8 + 4 + 8  # name length, n_dims, one dim, type, offset
_ENTRY_COST = 256  # memory charged per key/value or tensor kept


class _Reader:
    """Sequential reads with every length checked against the file size first."""

    def __init__(self, f: IO[bytes], size: int, name: str) -> None:
        self.f, self.size, self.name, self.pos = f, size, name, 0
        self.budget = KEEP_TOTAL  # value bytes the facts may still hold (longer values are cut)
        self.required = KEEP_TOTAL  # key, name and entry bytes: a file needing more is refused

    def keep(self, wanted: int) -> int:
        """How much of ``wanted`` bytes may be kept; charges the budget."""
        granted = max(0, min(wanted, self.budget))
        self.budget -= granted
        return granted

    def fail(self, reason: str) -> GGUFFormatError:
        return GGUFFormatError(f"{self.name!r} is not a valid GGUF file: {reason} (at byte {self.pos})",
                               path=self.name)

    def need(self, n: int, what: str) -> None:
        if n < 0 or n > self.size - self.pos:
            raise self.fail(f"{what} needs {n} bytes but the file ends after {self.size - self.pos} more")

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        data = self.f.read(n)
        if len(data) != n:
            raise self.fail(f"file shrank while reading {what}")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        if n <= 4096:
            self.take(n, what)
        else:
            self.f.seek(n, os.SEEK_CUR)
            self.pos += n

    def charge(self, n: int) -> None:
        """Charge ``n`` bytes that must be kept; a file needing more than the budget is refused."""
        if n > self.required:
            raise self.fail(f"the metadata needs more than {KEEP_TOTAL} bytes of memory")
        self.required -= n

    def u32(self, what: str) -> int:
        return _U32.unpack(self.take(4, what))[0]

    def u64(self, what: str) -> int:
        return _U64.unpack(self.take(8, what))[0]

    def string(self, what: str, *, limit: int | None = None, keep: int = KEEP_STRING,
               required: bool = False) -> str:
        """A length-prefixed string; at most ``keep`` bytes are read, the rest skipped.

        A ``required`` string (a key, a tensor name) must fit the memory budget whole.
        """
        n = self.u64(f"length of {what}")
        if limit is not None and n > limit:
            raise self.fail(f"{what} is {n} bytes long (at most {limit} allowed)")
        self.need(n, what)
        if required:
            self.charge(n)
        kept = n if required else self.keep(min(n, keep))
        data = self.take(kept, what)
        self.skip(n - kept, what)
        return data.decode("utf-8", "replace")


def _read_value(r: _Reader, vtype: int, key: str) -> Any:
    if vtype == _STRING:
        return r.string(f"string value of {key!r}")
    if vtype == _ARRAY:
        return _read_array(r, key)
    scalar = _SCALARS.get(vtype)
    if scalar is None:
        raise r.fail(f"key {key!r} has unknown value type {vtype}")
    return scalar.unpack(r.take(scalar.size, f"value of {key!r}"))[0]


def _read_array(r: _Reader, key: str) -> ArraySummary:
    etype = r.u32(f"element type of {key!r}")
    count = r.u64(f"length of array {key!r}")
    if etype == _ARRAY:
        raise r.fail(f"key {key!r} is an array of arrays, which GGUF readers do not support")
    if etype == _STRING:
        r.need(count * 8, f"array {key!r} of {count} strings")  # every string has an 8-byte length
        head = []
        for i in range(min(count, KEEP_ARRAY)):
            n = r.u64(f"length of {key!r}[{i}]")
            r.need(n, f"{key!r}[{i}]")
            kept = r.keep(min(n, 256))
            head.append(r.take(kept, f"{key!r}[{i}]").decode("utf-8", "replace"))
            r.skip(n - kept, f"{key!r}[{i}]")
        _skip_strings(r, count - len(head), key)
        return ArraySummary("string", count, tuple(head))
    scalar = _SCALARS.get(etype)
    if scalar is None:
        raise r.fail(f"array {key!r} has unknown element type {etype}")
    r.need(count * scalar.size, f"array {key!r} of {count} {_TYPE_NAMES[etype]}")
    kept = r.keep(min(count, KEEP_NUMBERS) * 8) // 8
    data = r.take(kept * scalar.size, f"array {key!r}")
    r.skip((count - kept) * scalar.size, f"array {key!r}")
    head = tuple(scalar.unpack_from(data, i * scalar.size)[0] for i in range(kept))
    return ArraySummary(_TYPE_NAMES[etype], count, head)


def _skip_strings(r: _Reader, count: int, key: str) -> None:
    """Walk ``count`` length-prefixed strings, reading the file in blocks (fast for 100k tokens)."""
    base, buf, cur = r.pos, b"", 0
    for _ in range(count):
        if len(buf) - cur < 8:
            r.pos = base + cur
            r.need(8, f"length of a string in {key!r}")
            r.f.seek(r.pos)
            buf, base, cur = r.f.read(min(_BLOCK, r.size - r.pos)), r.pos, 0
            if len(buf) < 8:
                raise r.fail(f"file shrank while reading {key!r}")
        n = _U64.unpack_from(buf, cur)[0]
        if n > r.size - (base + cur + 8):
            r.pos = base + cur
            raise r.fail(f"a string in {key!r} is {n} bytes long, past the end of the file")
        cur += 8 + n
    r.pos = base + cur
    r.f.seek(r.pos)


def _read_kvs(r: _Reader, n_kv: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for i in range(n_kv):
        r.charge(_ENTRY_COST)
        key = r.string(f"key #{i}", limit=MAX_KEY_BYTES, required=True)
        if key in metadata:
            raise r.fail(f"duplicate key {key!r}")
        vtype = r.u32(f"value type of {key!r}")
        metadata[key] = _read_value(r, vtype, key)
    return metadata


def _alignment(r: _Reader, metadata: Mapping[str, Any]) -> int:
    value = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(value, int) or isinstance(value, bool):
        raise r.fail("general.alignment is not an integer")
    if value <= 0 or value & (value - 1) or value > MAX_ALIGNMENT:
        raise r.fail(f"general.alignment {value} is not a power of two between 1 and {MAX_ALIGNMENT}")
    return value


def _read_tensor(r: _Reader, i: int, alignment: int) -> TensorInfo:
    import gguf  # deferred: type tables only

    name = r.string(f"name of tensor #{i}", limit=MAX_TENSOR_NAME, required=True)
    n_dims = r.u32(f"dimension count of tensor {name!r}")
    if not 1 <= n_dims <= MAX_DIMS:
        raise r.fail(f"tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
    shape = tuple(r.u64(f"dimension of tensor {name!r}") for _ in range(n_dims))
    n_elements = 1
    for dim in shape:
        if dim == 0 or dim > _INT64_MAX:
            raise r.fail(f"tensor {name!r} has an invalid dimension {dim}")
        n_elements *= dim
    if n_elements > _INT64_MAX:
        raise r.fail(f"tensor {name!r} has too many elements ({n_elements})")
    ggml_type = r.u32(f"type of tensor {name!r}")
    try:
        qtype = gguf.GGMLQuantizationType(ggml_type)
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise r.fail(f"tensor {name!r} has unknown type {ggml_type}") from None
    if shape[0] % block:
        raise r.fail(f"tensor {name!r}: first dimension {shape[0]} is not a multiple of the block size {block}")
    offset = r.u64(f"offset of tensor {name!r}")
    if offset % alignment:
        raise r.fail(f"tensor {name!r} offset {offset} is not aligned to {alignment}")
    return TensorInfo(name, shape, ggml_type, qtype.name, offset, n_elements // block * type_size)


def _read_tensors(r: _Reader, n_tensors: int, alignment: int) -> tuple[TensorInfo, ...]:
    tensors = []
    names: set[str] = set()
    for i in range(n_tensors):
        r.charge(_ENTRY_COST)
        tensor = _read_tensor(r, i, alignment)
        if tensor.name in names:
            raise r.fail(f"duplicate tensor name {tensor.name!r}")
        names.add(tensor.name)
        tensors.append(tensor)
    return tuple(tensors)


def _check_data(r: _Reader, tensors: tuple[TensorInfo, ...], alignment: int) -> int:
    data_offset = -(-r.pos // alignment) * alignment
    if data_offset > r.size:
        raise r.fail(f"the data section would start at byte {data_offset}, past the end of the file ({r.size})")
    end = 0
    for tensor in sorted(tensors, key=lambda t: t.offset):
        if tensor.offset < end:
            raise r.fail(f"tensor {tensor.name!r} overlaps the tensor before it")
        end = tensor.offset + tensor.n_bytes
        if data_offset + end > r.size:
            raise r.fail(f"tensor {tensor.name!r} data ends at byte {data_offset + end}, past the end "
                         f"of the file ({r.size} bytes): the file is truncated or damaged")
    return data_offset


def _quantization(file_type: int | None, tensors: tuple[TensorInfo, ...]) -> str:
    import gguf

    if file_type is not None:
        try:
            return gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            return f"file type {file_type}"
    by_type: dict[str, int] = {}
    for tensor in tensors:
        by_type[tensor.type_name] = by_type.get(tensor.type_name, 0) + tensor.n_bytes
    return max(by_type, key=by_type.__getitem__) if by_type else "unknown"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parse(f: IO[bytes], size: int, name: str) -> GGUFInfo:
    r = _Reader(f, size, name)
    if size < _HEADER.size:
        raise r.fail(f"only {size} bytes, shorter than a GGUF header ({_HEADER.size} bytes)")
    magic, version, n_tensors, n_kv = _HEADER.unpack(r.take(_HEADER.size, "header"))
    if magic != _MAGIC:
        raise r.fail(f"bad magic {magic!r} (expected {_MAGIC!r})")
    if version not in _VERSIONS:
        raise r.fail(f"unsupported GGUF version {version} (supported: 2, 3)")
    room = size - r.pos
    if n_kv > MAX_KV or n_kv * _MIN_KV_BYTES > room:
        raise r.fail(f"key/value count {n_kv} does not fit in a {size}-byte file")
    if n_tensors > MAX_TENSORS or n_tensors * _MIN_TENSOR_BYTES > room:
        raise r.fail(f"tensor count {n_tensors} does not fit in a {size}-byte file")
    metadata = _read_kvs(r, n_kv)
    alignment = _alignment(r, metadata)
    tensors = _read_tensors(r, n_tensors, alignment)
    data_offset = _check_data(r, tensors, alignment)
    arch = _str_or_none(metadata.get("general.architecture"))
    file_type = _int_or_none(metadata.get("general.file_type"))
    return GGUFInfo(
        path=name, file_size=size, version=version, alignment=alignment, data_offset=data_offset,
        tensor_count=len(tensors), parameter_count=sum(_elements(t) for t in tensors),
        architecture=arch, name=_str_or_none(metadata.get("general.name")), file_type=file_type,
        quantization=_quantization(file_type, tensors),
        context_length=_int_or_none(metadata.get(f"{arch}.context_length")) if arch else None,
        chat_template=_str_or_none(metadata.get("tokenizer.chat_template")),
        license=_str_or_none(metadata.get("general.license")),
        metadata=MappingProxyType(metadata), tensors=tensors,
    )


def _elements(tensor: TensorInfo) -> int:
    n = 1
    for dim in tensor.shape:
        n *= dim
    return n


def _open_regular(name: str) -> IO[bytes]:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(name, flags)
    except FileNotFoundError:
        raise ModelLoadError(f"model file {name!r} does not exist", path=name) from None
    except IsADirectoryError:
        raise ModelLoadError(f"model path {name!r} is a directory, not a GGUF file", path=name) from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {name!r}: {exc.strerror}", path=name) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        kind = "a directory" if os.path.isdir(name) else "not a regular file"
        raise ModelLoadError(f"model path {name!r} is {kind}, not a GGUF file", path=name)
    return os.fdopen(fd, "rb", buffering=1 << 16)


def check_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Validate ``path`` as a GGUF file and return its facts.

    Raises :class:`~llamarun.errors.ModelLoadError` when the file is missing or
    unreadable and :class:`~llamarun.errors.GGUFFormatError` (naming the file,
    the problem and the byte offset) when it is not a well-formed GGUF file.
    """
    name = os.fspath(path)
    with _open_regular(name) as f:
        size = os.fstat(f.fileno()).st_size
        try:
            return _parse(f, size, name)
        except OSError as exc:
            raise ModelLoadError(f"cannot read model file {name!r}: {exc.strerror or exc}", path=name) from None
