"""Packing stored documents: smaller, exact, and plain JSON written before still reads."""

from __future__ import annotations

import json

import pytest

from shared.backends.codec import RECORD, STATE, pack, unpack
from tests.shared.backends.conftest import new_state


def test_a_state_packs_smaller_and_unpacks_exactly() -> None:
    document = new_state().model_dump_json()
    packed = pack(STATE, document)
    assert packed.startswith(b"\x00s1") and len(packed) < len(document) / 2
    assert unpack(packed) == document


def test_a_packed_value_survives_the_clients_surrogateescape_decoding() -> None:
    packed = pack(RECORD, json.dumps({"turn_id": "t" * 16, "action": "Look around" * 5}))
    as_the_client_reads_it = packed.decode("utf-8", "surrogateescape")
    assert unpack(as_the_client_reads_it) == unpack(packed)


def test_plain_json_and_tiny_values_are_read_as_they_are() -> None:
    assert unpack('{"version":0}') == '{"version":0}'
    assert unpack(b'{"a":1}') == '{"a":1}'
    assert pack(RECORD, '{"a":1}') == b'{"a":1}'


def test_a_value_packed_with_an_unknown_dictionary_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown dictionary"):
        unpack(b"\x00z9junk")
