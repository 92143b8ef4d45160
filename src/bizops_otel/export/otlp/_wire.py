"""Protocol Buffers wire format, the little of it OTLP metrics need.

A message is a sequence of fields, each a tag (field number × 8 + wire type) and a value:
a varint (wire type 0), 8 little-endian bytes (type 1: fixed64, sfixed64, double), or a
length-delimited run of bytes (type 2: strings, nested messages, packed repeats). Writing
the fields of a message in field-number order and leaving proto3 defaults out gives the
same bytes the reference serializers give.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

VARINT, FIXED64, LENGTH = 0, 1, 2

_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")

AttributeValue = str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] \
    | Sequence[float]


def varint(value: int) -> bytes:
    """Unsigned LEB128; a negative int64 is written as its two's complement (10 bytes)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def field_bytes(field: int, payload: bytes) -> bytes:
    """A length-delimited field: a string, a nested message, a packed repeat."""
    return tag(field, LENGTH) + varint(len(payload)) + payload


def field_varint(field: int, value: int) -> bytes:
    return tag(field, VARINT) + varint(value)


def field_fixed64(field: int, value: int) -> bytes:
    return tag(field, FIXED64) + _FIXED64.pack(value)


def field_double(field: int, value: float) -> bytes:
    return tag(field, FIXED64) + _DOUBLE.pack(value)


def any_value(value: AttributeValue) -> bytes:
    """``AnyValue``: string 1, bool 2, int 3, double 4, array 5 (``ArrayValue.values`` 1)."""
    if isinstance(value, str):
        return field_bytes(1, value.encode("utf-8", "replace"))
    if isinstance(value, bool):
        return field_varint(2, int(value))
    if isinstance(value, int):
        if -(1 << 63) <= value < (1 << 63):
            return field_varint(3, value)
        return field_bytes(1, str(value).encode())  # past int64: kept, as text
    if isinstance(value, float):
        return field_double(4, value)
    return field_bytes(5, b"".join(field_bytes(1, any_value(v)) for v in value))


def key_value(key: str, value: AttributeValue) -> bytes:
    """``KeyValue``: key 1, value 2."""
    return field_bytes(1, key.encode("utf-8", "replace")) + field_bytes(2, any_value(value))


def attributes(field: int, pairs: Mapping[str, AttributeValue]) -> bytes:
    """Repeated ``KeyValue`` in ``field`` of the enclosing message, in the given order."""
    return b"".join(field_bytes(field, key_value(k, v)) for k, v in pairs.items())
