"""A TensorFlow-free TFRecord reader with ``tf.train.Example`` parsing (datasets.md §1).

Framing per record: uint64 LE length, uint32 masked CRC32C of those 8 bytes, payload, uint32 masked CRC32C of the
payload. Every CRC is checked; a bad one is an error naming the file and the byte offset of the record. CRC32C
comes from ``google_crc32c`` (C, the ``data`` extra) when installed, else from a table-driven pure-Python version
(correct, ~100x slower).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from vgbench.errors import InputError

_POLY = 0x82F63B78  # Castagnoli, reflected


def _table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _table()


def crc32c_python(data: bytes) -> int:
    """CRC32C (init and final XOR 0xFFFFFFFF) in pure Python."""
    crc = 0xFFFFFFFF
    t = _TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # pragma: no branch
    import google_crc32c

    def crc32c(data: bytes) -> int:
        """CRC32C of ``data``."""
        return google_crc32c.value(bytes(data))

    CRC_IMPL = "google_crc32c"
except ImportError:  # pragma: no cover - exercised where the extra is absent
    crc32c = crc32c_python
    CRC_IMPL = "python"


def masked_crc(data: bytes) -> int:
    """TFRecord's mask: rotate right by 15 and add 0xA282EAD8 (mod 2^32)."""
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def iter_records(f: BinaryIO, name: str) -> Iterator[tuple[int, bytes]]:
    """(offset, payload) of every record in an open TFRecord stream; CRCs checked, truncation detected."""
    offset = 0
    while True:
        head = f.read(12)
        if not head:
            return
        if len(head) < 12:
            raise InputError(f"{name}: truncated record header at byte {offset} ({len(head)} of 12 bytes)")
        (length,) = struct.unpack("<Q", head[:8])
        (len_crc,) = struct.unpack("<I", head[8:])
        if masked_crc(head[:8]) != len_crc:
            raise InputError(f"{name}: corrupt record at byte {offset}: length CRC mismatch (not a TFRecord file?)")
        payload = f.read(length)
        tail = f.read(4)
        if len(payload) < length or len(tail) < 4:
            raise InputError(
                f"{name}: truncated record at byte {offset}: {len(payload)} of {length} payload bytes; "
                "the file is incomplete, download it again"
            )
        if masked_crc(payload) != struct.unpack("<I", tail)[0]:
            raise InputError(f"{name}: corrupt record at byte {offset}: payload CRC mismatch; the file is damaged")
        yield offset, payload
        offset += 16 + length


def scan_records(f: BinaryIO, name: str) -> Iterator[int]:
    """Offsets of every record of a seekable stream, checking the framing only (length CRC, and that the payload
    and its CRC are all there) and seeking over the payloads: a fast check for truncation and foreign files."""
    offset = 0
    while True:
        head = f.read(12)
        if not head:
            return
        (length,) = struct.unpack("<Q", head[:8]) if len(head) == 12 else (0,)
        if len(head) < 12 or masked_crc(head[:8]) != struct.unpack("<I", head[8:])[0]:
            what = "truncated record header" if len(head) < 12 else "length CRC mismatch"
            raise InputError(f"{name}: not a complete TFRecord file: {what} at byte {offset}")
        f.seek(length, 1)
        if len(f.read(4)) < 4:
            raise InputError(
                f"{name}: truncated record at byte {offset} ({length} payload bytes declared); the file is "
                "incomplete, download it again"
            )
        yield offset
        offset += 16 + length


def write_record(f: BinaryIO, payload: bytes) -> None:
    """Append one framed record (used by tests and fixtures)."""
    head = struct.pack("<Q", len(payload))
    f.write(head + struct.pack("<I", masked_crc(head)) + payload + struct.pack("<I", masked_crc(payload)))


# ----------------------------------------------------------------------------------------------------------
# Minimal protobuf: tf.train.Example -> {key: list of bytes | floats | ints}


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of a protobuf message; length-delimited values as memoryviews."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 2:
            ln, i = _varint(buf, i)
            v, i = buf[i : i + ln], i + ln
        elif wt == 5:
            v, i = buf[i : i + 4], i + 4
        elif wt == 1:
            v, i = buf[i : i + 8], i + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        yield num, wt, v


def _feature(buf: memoryview) -> tuple[str, list]:
    for num, _, v in _fields(buf):
        if num == 1:  # BytesList
            return "bytes", [bytes(x) for n, _, x in _fields(v) if n == 1]
        if num == 2:  # FloatList: packed (wire 2) or not (wire 5)
            out: list = []
            for n, wt, x in _fields(v):
                if n == 1:
                    out.extend(struct.unpack(f"<{len(x) // 4}f", x) if wt == 2 else struct.unpack("<f", x))
            return "float", out
        if num == 3:  # Int64List
            out = []
            for n, wt, x in _fields(v):
                if n != 1:
                    continue
                if wt == 0:
                    out.append(x - (1 << 64) if x >= 1 << 63 else x)
                else:
                    j, mv = 0, x
                    while j < len(mv):
                        val, j = _varint(mv, j)
                        out.append(val - (1 << 64) if val >= 1 << 63 else val)
            return "int64", out
    return "empty", []


def parse_example(payload: bytes, keys: set[str] | None = None) -> dict[str, tuple[str, list]]:
    """Features of a serialized ``tf.train.Example`` as {key: (kind, values)}; ``keys`` limits what is decoded."""
    out = {}
    try:
        for num, _, features in _fields(memoryview(payload)):
            if num != 1:
                continue
            for fnum, _, entry in _fields(features):
                if fnum != 1:
                    continue
                key, value = None, None
                for enum, _, ev in _fields(entry):
                    if enum == 1:
                        key = bytes(ev).decode()
                    elif enum == 2:
                        value = ev
                if key is not None and (keys is None or key in keys):
                    out[key] = _feature(value) if value is not None else ("empty", [])
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"record is not a valid tf.train.Example ({exc})") from exc
    return out
