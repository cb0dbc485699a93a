"""How the Redis backend stores its JSON documents: compressed with a preset dictionary.

A game state is mostly the same keys and the same kind of sentences turn after turn, and a
turn record is small; compression with a dictionary of sample documents shrinks the first
about eightfold and the second about threefold (see bench/results/). A packed value is

    NUL, a two-byte format naming the algorithm and the dictionary, then the compressed body.

| format | algorithm                         | dictionary          |
|--------|-----------------------------------|---------------------|
| `s1`   | raw deflate (zlib), level 6       | `zdicts.STATE_V1`   |
| `r1`   | raw deflate (zlib), level 6       | `zdicts.RECORD_V1`  |
| `S1`   | zstd frame, level 3, no dict id   | `zdicts.STATE_V1`   |
| `R1`   | zstd frame, level 3, no dict id   | `zdicts.RECORD_V1`  |

`STORE_COMPRESSION` (zlib, zstd or none) chooses how new values are written; every format is
always read, and so is plain JSON (JSON text never starts with NUL), so the setting can change
on a live store. A dictionary, once used, is never changed: a better one gets a new format.

Packed values are bytes that need not be UTF-8. The backend's client decodes replies with
`surrogateescape` (see `CLIENT_OPTIONS`), which turns any bytes into a `str` that encodes back
to exactly the same bytes.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

import zstandard

from shared.backends.zdicts import RECORD_V1, STATE_V1

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = ["CLIENT_OPTIONS", "RECORD", "STATE", "Codec", "Compression", "Document", "unpack"]


class Compression(StrEnum):
    ZLIB = "zlib"
    ZSTD = "zstd"
    NONE = "none"


class Document(StrEnum):
    """What a stored value is; each kind has its own dictionary."""

    STATE = "state"
    RECORD = "record"


STATE: Final = Document.STATE
RECORD: Final = Document.RECORD

_MARK = b"\x00"
_DICTIONARIES: Final[dict[Document, bytes]] = {
    Document.STATE: STATE_V1.encode(),
    Document.RECORD: RECORD_V1.encode(),
}
_FORMATS: Final[dict[tuple[Compression, Document], bytes]] = {
    (Compression.ZLIB, Document.STATE): b"s1",
    (Compression.ZLIB, Document.RECORD): b"r1",
    (Compression.ZSTD, Document.STATE): b"S1",
    (Compression.ZSTD, Document.RECORD): b"R1",
}
_READS: Final[dict[bytes, tuple[Compression, Document]]] = {v: k for k, v in _FORMATS.items()}
_ZLIB_LEVEL = 6
_ZSTD_LEVEL = 3
# Below this, a compressor's own framing eats what it saves.
DEFAULT_THRESHOLD = 48

# Options every redis-py client of the backend needs; see the module docstring.
CLIENT_OPTIONS: Final[dict[str, Any]] = {
    "decode_responses": True,
    "encoding_errors": "surrogateescape",
}

_ZSTD_DICTIONARIES: Final[dict[Document, zstandard.ZstdCompressionDict]] = {
    document: zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    for document, data in _DICTIONARIES.items()
}
for _dictionary in _ZSTD_DICTIONARIES.values():
    _dictionary.precompute_compress(level=_ZSTD_LEVEL)

# zstd (de)compressor objects are not safe to share between threads, and building one per
# value costs more than compressing a state: one set per thread.
_local = threading.local()


def _zstd(document: Document) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    cache: dict[Document, tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]]
    cache = _local.__dict__.setdefault("zstd", {})
    pair = cache.get(document)
    if pair is None:
        dictionary = _ZSTD_DICTIONARIES[document]
        pair = (
            zstandard.ZstdCompressor(level=_ZSTD_LEVEL, dict_data=dictionary, write_dict_id=False),
            zstandard.ZstdDecompressor(dict_data=dictionary),
        )
        cache[document] = pair
    return pair


@dataclass(frozen=True)
class Codec:
    """How new values are written: `compression`, for documents of `threshold` bytes or more
    (smaller ones, and any that compression would not shrink, are stored as they are)."""

    compression: Compression = Compression.ZSTD
    threshold: int = DEFAULT_THRESHOLD

    def pack(self, document: Document, text: str) -> bytes:
        """`text` (a JSON document) as stored."""
        raw = text.encode()
        if self.compression is Compression.NONE or len(raw) < self.threshold:
            return raw
        header = _MARK + _FORMATS[self.compression, document]
        if self.compression is Compression.ZSTD:
            body = _zstd(document)[0].compress(raw)
        else:
            compressor = zlib.compressobj(
                _ZLIB_LEVEL, zlib.DEFLATED, -15, zdict=_DICTIONARIES[document]
            )
            body = compressor.compress(raw) + compressor.flush()
        packed = header + body
        return packed if len(packed) < len(raw) else raw

    @classmethod
    def from_settings(cls, settings: Settings) -> Codec:
        return cls(Compression(settings.store_compression), settings.store_compression_threshold)


def unpack(stored: str | bytes) -> str:
    """The JSON text of a stored value, in any format or none."""
    data = stored.encode("utf-8", "surrogateescape") if isinstance(stored, str) else stored
    if not data.startswith(_MARK):
        return data.decode()
    known = _READS.get(data[1:3])
    if known is None:
        raise ValueError(f"stored value packed in an unknown format {data[1:3]!r}")
    compression, document = known
    body = data[3:]
    if compression is Compression.ZSTD:
        return _zstd(document)[1].decompress(body).decode()
    decompressor = zlib.decompressobj(-15, zdict=_DICTIONARIES[document])
    return (decompressor.decompress(body) + decompressor.flush()).decode()
