"""Hand-built GGUF bytes for the malformed-file corpus (every field under the test's control)."""

from __future__ import annotations

import struct

U8, U32, STRING, ARRAY, U64 = 0, 4, 8, 9, 10
F32, Q4_0 = 0, 2


def s(text: str | bytes, length: int | None = None) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw) if length is None else length) + raw


def kv_u32(key: str, value: int) -> bytes:
    return s(key) + struct.pack("<II", U32, value)


def kv_str(key: str, value: str) -> bytes:
    return s(key) + struct.pack("<I", STRING) + s(value)


def tensor(name: str | bytes, dims: list[int], ggml_type: int = F32, offset: int = 0,
           n_dims: int | None = None) -> bytes:
    out = s(name) + struct.pack("<I", len(dims) if n_dims is None else n_dims)
    out += b"".join(struct.pack("<Q", d) for d in dims)
    return out + struct.pack("<IQ", ggml_type, offset)


BASE_KVS = [kv_str("general.architecture", "llama"), kv_u32("general.alignment", 32)]
BASE_TENSORS = [tensor("a", [8], F32, 0), tensor("b", [4, 2], F32, 32)]
BASE_DATA = bytes(range(64))


def build(kvs: list[bytes] | None = None, tensors: list[bytes] | None = None, data: bytes | None = None, *,
          n_kv: int | None = None, n_tensors: int | None = None, version: int = 3, magic: bytes = b"GGUF",
          pad_to: int = 32) -> bytes:
    kvs = BASE_KVS if kvs is None else kvs
    tensors = BASE_TENSORS if tensors is None else tensors
    data = BASE_DATA if data is None else data
    head = magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                               len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tensors)
    return body + b"\0" * ((-len(body)) % pad_to) + data
