"""The chaos suite's offline parts (chaos/): poison records, the decoder fuzz, the verdict.

The live run itself needs its own Kafka and Redis (`make chaos`); what is
checked here is that its yardsticks are right: each poison record meets the
dead-letter reason it is counted under, the at-limit records are exactly at
the limit, and the verdict fails on each kind of loss.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from chaos.check import Findings
from chaos.fuzz import FuzzResult, fuzz
from chaos.report import failures, table
from chaos.run import Outcome
from chaos.traffic import POISON_REASONS, poison
from streams.codec import MAX_RECORD_BYTES, avro
from streams.errors import InputError
from streams.events import validate_event

TEMPLATE = {
    "event_id": "e-1",
    "customer_id": "c-1",
    "type": "page_view",
    "occurred_at": "2026-05-04T12:00:00Z",
    "channel": "web",
    "attributes": {"page": "/"},
}
START = 1_777_852_800_000  # 2026-05-04T00:00:00Z


def live_reason(value: bytes) -> str | None:
    """What a worker's decode + validate says of ``value`` (None: a valid event)."""
    try:
        validate_event(avro.decode(value, avro.local_registry().resolve))
    except InputError as exc:
        return exc.reason
    return None


@pytest.mark.parametrize("kind", [k for k in POISON_REASONS if k != "late"])
def test_each_poison_record_meets_the_reason_it_is_counted_under(kind: str) -> None:
    item = poison(kind, 0, random.Random(1), TEMPLATE, START, broker_max=200_000)
    assert live_reason(item.value) == POISON_REASONS[kind]
    assert (item.event is not None) == (POISON_REASONS[kind] is None)


def test_a_late_record_is_a_valid_event_a_day_before_the_stream() -> None:
    item = poison("late", 0, random.Random(1), TEMPLATE, START, broker_max=200_000)
    assert live_reason(item.value) is None  # late is judged against the partition's watermark, not here
    assert avro.decode(item.value, avro.local_registry().resolve)["occurred_at"] == START - 86_400_000


@pytest.mark.parametrize(
    ("kind", "size"),
    [
        ("at_app_limit", MAX_RECORD_BYTES),
        ("over_app_limit", MAX_RECORD_BYTES + 1),
        ("at_broker_limit", 200_000),
        ("over_broker_limit", 400_000),
    ],
)
def test_size_records_are_exactly_at_or_over_their_limit(kind: str, size: int) -> None:
    assert len(poison(kind, 0, random.Random(2), TEMPLATE, START, broker_max=200_000).value) == size


def test_the_fuzz_counts_rejections_and_finds_no_crash_in_a_small_run() -> None:
    res = fuzz(20_000, seed=3)
    assert res.inputs == 20_000
    assert res.crashes == Counter()
    assert res.accepted > 0 and sum(res.rejected.values()) > 0


def test_the_fuzz_counts_what_is_not_an_input_error_as_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    import chaos.fuzz

    def broken(raw: object) -> object:
        raise TypeError("unhashable")

    monkeypatch.setattr(chaos.fuzz, "validate_event", broken)
    res = fuzz(100, seed=1)
    assert sum(res.crashes.values()) > 0 and res.examples


def outcome(**findings: int) -> Outcome:
    return Outcome(
        options={},
        sent={"event": 10, "not_avro": 1},
        findings=Findings(expected=5, dlq=Counter({"malformed": 1}), **findings),
        expected_dlq={"malformed": 1},
        uncommitted=0,
        stalled_partitions=[],
        kills=1,
        restarts=[{"worker": "w1", "cause": "kill", "ready_s": 3.0, "decide_s": None, "died": False}],
        crashes={},
        fuzz=FuzzResult(inputs=10),
    )


def test_a_clean_outcome_passes_and_shows_every_row() -> None:
    o = outcome()
    assert failures(o) == []
    text = table(o)
    for row in ("lost", "duplicates", "Redis keys missing / stale", "DLQ malformed", "start to /ready", "crashes"):
        assert row in text
    assert "verdict: PASS" in text


@pytest.mark.parametrize("field", ["lost", "redis_missing", "redis_stale"])
def test_any_loss_fails_the_verdict(field: str) -> None:
    assert failures(outcome(**{field: 1}))


def test_duplicates_alone_do_not_fail_the_verdict() -> None:
    assert failures(outcome(duplicates=4, extra=0)) == []


def test_a_missing_dead_letter_or_a_crash_fails_the_verdict() -> None:
    o = outcome()
    o.findings.dlq = Counter()
    assert failures(o)
    o = outcome()
    o.crashes = {70: 1}
    assert failures(o)
    o = outcome()
    o.uncommitted, o.stalled_partitions = 3, [2]
    assert failures(o) == ["3 input records never committed (partitions [2])"]
    o = outcome()  # a valid event dead-lettered (as late, say) was never evaluated: input lost
    o.findings.dlq = Counter({"malformed": 1, "late": 3})
    assert failures(o) == ["dead letters not expected: {'late': 3}"]
    o = outcome()
    o.fuzz.crashes["random: TypeError"] = 1
    assert failures(o)


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_the_workers_run_at_the_guarantee_asked_for(guarantee: str) -> None:
    from chaos.workers import worker_env
    from streams.settings import Settings

    env = worker_env("127.0.0.1:1", "redis://127.0.0.1:1/0", "chaos-x", "chaosx", guarantee)
    assert Settings.from_env(env).processing.guarantee == guarantee


def test_chaos_runs_the_workers_default_guarantee_unless_asked() -> None:
    """`make chaos` tries what a worker runs by default; `--guarantee` the other mode."""
    from chaos.run import Options
    from streams.settings import Settings

    assert Options().guarantee == Settings().processing.guarantee
