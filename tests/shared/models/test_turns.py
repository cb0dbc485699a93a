"""Turn records across versions: what an older release wrote still reads, and a field a newer
release adds is ignored rather than failing the read."""

from __future__ import annotations

from shared.models import TokenUsage, TurnRecord


def test_a_record_from_a_newer_release_reads_without_its_new_fields() -> None:
    document = {
        "turn_id": "t" * 16,
        "session_id": "s" * 24,
        "status": "completed",
        "action": "Look around",
        "accepted_at": 1.0,
        "client": "c" * 32,
        "from_the_future": {"anything": 1},
        "result": {
            "narrative": "The road bends.",
            "choices": ["Go on"],
            "state_version": 3,
            "lines": [{"speaker": "narrator", "text": "The road bends.", "mood": "calm"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8, "cost": 1},
            "rating": 5,
        },
    }
    record = TurnRecord.model_validate(document)
    assert record.result is not None and record.result.lines[0].speaker == "narrator"
    assert record.result.usage == TokenUsage(prompt_tokens=5, completion_tokens=3, total_tokens=8)


def test_a_record_from_before_speakers_and_agents_reads_with_their_defaults() -> None:
    record = TurnRecord.model_validate(
        {
            "turn_id": "t" * 16,
            "session_id": "s" * 24,
            "action": "Look around",
            "accepted_at": 1.0,
            "result": {
                "narrative": "The road bends.",
                "choices": [],
                "state_version": 1,
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
            },
        }
    )
    assert record.client is None and record.result is not None
    assert record.result.lines == [] and record.result.usage is not None
    assert record.result.usage.agents == {} and record.result.usage.model is None
