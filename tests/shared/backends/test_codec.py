"""Packing stored documents: smaller, exact, in the format the setting chooses, and every
format (plain JSON written before compression existed too) always readable."""

from __future__ import annotations

import json
import threading

import pytest

from shared.backends.codec import RECORD, STATE, Codec, Compression, unpack
from shared.settings import Settings
from tests.shared.backends.conftest import new_state

FORMATS = {Compression.ZLIB: b"\x00s1", Compression.ZSTD: b"\x00S1"}


@pytest.mark.parametrize("compression", [Compression.ZLIB, Compression.ZSTD])
def test_a_state_packs_smaller_and_unpacks_exactly(compression: Compression) -> None:
    document = new_state().model_dump_json()
    packed = Codec(compression).pack(STATE, document)
    assert packed.startswith(FORMATS[compression]) and len(packed) < len(document) / 2
    assert unpack(packed) == document


@pytest.mark.parametrize("compression", [Compression.ZLIB, Compression.ZSTD])
def test_a_packed_value_survives_the_clients_surrogateescape_decoding(
    compression: Compression,
) -> None:
    text = json.dumps({"turn_id": "t" * 16, "action": "Look around" * 5})
    packed = Codec(compression).pack(RECORD, text)
    assert packed.startswith(b"\x00")
    as_the_client_reads_it = packed.decode("utf-8", "surrogateescape")
    assert unpack(as_the_client_reads_it) == text


def test_values_written_under_any_setting_are_read_under_any_other() -> None:
    document = new_state().model_dump_json()
    stored = [Codec(compression).pack(STATE, document) for compression in Compression]
    assert len(set(stored)) == 3  # three different formats
    assert all(unpack(value) == document for value in stored)


def test_none_stores_plain_json() -> None:
    document = new_state().model_dump_json()
    assert Codec(Compression.NONE).pack(STATE, document) == document.encode()


def test_values_under_the_threshold_are_stored_as_they_are() -> None:
    document = new_state().model_dump_json()
    size = len(document.encode())
    assert Codec(Compression.ZSTD, threshold=size + 1).pack(STATE, document) == document.encode()
    assert Codec(Compression.ZSTD, threshold=size).pack(STATE, document).startswith(b"\x00S1")


def test_plain_json_and_tiny_values_are_read_as_they_are() -> None:
    assert unpack('{"version":0}') == '{"version":0}'
    assert unpack(b'{"a":1}') == '{"a":1}'
    assert Codec().pack(RECORD, '{"a":1}') == b'{"a":1}'


def test_a_value_packed_in_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        unpack(b"\x00z9junk")


def test_the_codec_follows_the_settings() -> None:
    settings = Settings(store_compression="zlib", store_compression_threshold=100)
    assert Codec.from_settings(settings) == Codec(Compression.ZLIB, 100)
    assert Codec.from_settings(Settings()) == Codec(Compression.ZSTD, 48) == Codec()


def test_zstd_packs_the_same_from_many_threads() -> None:
    # The zstd (de)compressors are kept per thread; sharing one would corrupt values.
    documents = [new_state(seed=i).model_dump_json() for i in range(8)]
    codec = Codec(Compression.ZSTD)
    failures: list[str] = []

    def work(document: str) -> None:
        for _ in range(200):
            if unpack(codec.pack(STATE, document)) != document:
                failures.append(document)

    threads = [threading.Thread(target=work, args=(document,)) for document in documents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
