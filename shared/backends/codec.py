"""How the Redis backend stores its JSON documents: deflated with a preset dictionary.

A game state is mostly the same keys and the same kind of sentences turn after turn, and a
turn record is small; deflate with a dictionary of sample documents shrinks the first about
eightfold and the second about threefold (see bench/results/). A packed value is

    NUL, a two-byte kind naming the dictionary, then a raw deflate stream.

JSON text never starts with NUL, so `unpack` reads values written before compression existed
(plain JSON) as well as packed ones, and a dictionary, once used, is never changed: a better
one gets a new kind.

Packed values are bytes that need not be UTF-8. The backend's client decodes replies with
`surrogateescape` (see `CLIENT_OPTIONS`), which turns any bytes into a `str` that encodes back
to exactly the same bytes.
"""

from __future__ import annotations

import zlib
from typing import Any, Final

from shared.backends.zdicts import RECORD_V1, STATE_V1

__all__ = ["CLIENT_OPTIONS", "RECORD", "STATE", "Kind", "pack", "unpack"]

Kind = bytes

STATE: Final[Kind] = b"s1"
RECORD: Final[Kind] = b"r1"

_MARK = b"\x00"
_DICTIONARIES: Final[dict[Kind, bytes]] = {
    STATE: STATE_V1.encode(),
    RECORD: RECORD_V1.encode(),
}
# Below this, deflate's own framing eats what it saves.
_SMALLEST_WORTH_PACKING = 48

# Options every redis-py client of the backend needs; see the module docstring.
CLIENT_OPTIONS: Final[dict[str, Any]] = {
    "decode_responses": True,
    "encoding_errors": "surrogateescape",
}


def pack(kind: Kind, document: str) -> bytes:
    """`document` (JSON text) as stored: packed with `kind`'s dictionary, or as it is when
    packing would not make it smaller."""
    raw = document.encode()
    if len(raw) < _SMALLEST_WORTH_PACKING:
        return raw
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=_DICTIONARIES[kind])
    packed = _MARK + kind + compressor.compress(raw) + compressor.flush()
    return packed if len(packed) < len(raw) else raw


def unpack(stored: str | bytes) -> str:
    """The JSON text of a stored value, packed or not."""
    data = stored.encode("utf-8", "surrogateescape") if isinstance(stored, str) else stored
    if not data.startswith(_MARK):
        return data.decode()
    kind, body = data[1:3], data[3:]
    dictionary = _DICTIONARIES.get(kind)
    if dictionary is None:
        raise ValueError(f"stored value packed with an unknown dictionary {kind!r}")
    decompressor = zlib.decompressobj(-15, zdict=dictionary)
    return (decompressor.decompress(body) + decompressor.flush()).decode()
