"""The catalog on Kafka, without Kafka: the record's bytes, its hash, refusals, ordering, switching."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.engine import DictStore
from streams.errors import CatalogRefused, ConfigError
from streams.live.catalog.deploy import choose_time, export
from streams.live.catalog.record import (
    FORMAT,
    CatalogRecord,
    Changes,
    Deployed,
    Version,
    content_hash,
    diff,
    load_files,
    load_record,
    read_folder,
)
from streams.live.catalog.versions import CatalogMetrics, CatalogVersions, LiveCatalog

REPO = Path(__file__).parents[2]
TOPOLOGIES = REPO / "topologies"
WHO = Deployed(by="ana", host="h1", at=1_700_000_000_000, tool="tactful 0.1.0", source="topologies")

ONE = """topology: one
version: 1
when:
  sequence:
    - event: a
then:
  - engage: {channel: email, action: hello}
"""
POLICIES = "lateness: 0s\n"


def files(**extra: str) -> dict[str, str]:
    return {"one.yaml": ONE, "policies.yaml": POLICIES, **extra}


def test_the_record_is_these_bytes() -> None:
    record = CatalogRecord(
        files={"policies.yaml": "lateness: 0s\n"},
        at=5,
        deployed=WHO,
        changes=Changes(previous="sha256:00", added=("b",), removed=(), changed=("a",), policies=True),
    )
    h = content_hash(record.files)
    assert record.key == f"{h}@5".encode()
    assert record.to_bytes() == (
        b'{"at":5,"changes":{"added":["b"],"changed":["a"],"policies":true,"previous":"sha256:00","removed":[]},'
        b'"deployed":{"at":1700000000000,"by":"ana","from":"topologies","host":"h1","tool":"tactful 0.1.0"},'
        b'"files":{"policies.yaml":"lateness: 0s\\n"},"format":1,"hash":"' + h.encode() + b'"}'
    )
    assert CatalogRecord.from_bytes(record.to_bytes()) == record


def test_the_hash_is_over_names_lengths_and_texts_in_name_order() -> None:
    expected = hashlib.sha256(b"a.yaml\n2\nx\nb.yaml\n3\nyz\n").hexdigest()
    assert content_hash({"b.yaml": "yz\n", "a.yaml": "x\n"}) == f"sha256:{expected}"
    # Moving text from one file to the next changes it: lengths are hashed.
    assert content_hash({"a.yaml": "x\ny", "b.yaml": "z\n"}) != content_hash({"b.yaml": "yz\n", "a.yaml": "x\n"})


def test_a_folder_reads_with_unix_line_endings(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_bytes(ONE.replace("\n", "\r\n").encode())
    (tmp_path / "notes.yml").write_text("ignored")
    assert read_folder(tmp_path) == {"one.yaml": ONE}


def good() -> bytes:
    return CatalogRecord(files=files(), at=0, deployed=WHO).to_bytes()


def edited(**fields: object) -> bytes:
    obj = orjson.loads(good())
    obj.update(fields)
    return orjson.dumps(obj)


@pytest.mark.parametrize(
    ("value", "reason", "says"),
    [
        (None, "corrupt", "no value"),
        (b"\x00\x01not json", "corrupt", "not JSON"),
        (b"[1]", "corrupt", "not a JSON object"),
        (edited(format="1"), "corrupt", "format"),
        (edited(format=FORMAT + 1), "format", "newer"),
        (edited(hash="sha256:beef"), "corrupt", "is not its files'"),
        (edited(files={"../x.yaml": ONE}), "corrupt", "plain *.yaml"),
        (edited(at=-1), "corrupt", "'at'"),
        (edited(deployed={}), "corrupt", "missing or malformed"),
        (good().replace(b"sequence", b"sekwence"), "corrupt", "is not its files'"),
    ],
    ids=["none", "binary", "array", "format-type", "newer", "hash", "path", "time", "metadata", "bit-flip"],
)
def test_records_that_cannot_be_used_are_refused(value: bytes | None, reason: str, says: str) -> None:
    with pytest.raises(CatalogRefused) as caught:
        load_record(value, 0)
    assert caught.value.reason == reason
    assert says in caught.value.detail


def test_a_record_whose_topologies_do_not_load_is_refused_as_invalid() -> None:
    value = CatalogRecord(files=files(**{"two.yaml": "topology: Two\n"}), at=0, deployed=WHO).to_bytes()
    with pytest.raises(CatalogRefused) as caught:
        load_record(value, 3)
    assert caught.value.reason == "invalid"
    assert "two.yaml" in caught.value.detail


def test_the_repository_catalog_round_trips() -> None:
    version = load_record(CatalogRecord(files=read_folder(TOPOLOGIES), at=7, deployed=WHO).to_bytes(), 4)
    assert [t.name for t in version.catalog.topologies] == [
        t.name for t in load_files(read_folder(TOPOLOGIES)).topologies
    ]
    assert (version.at, version.arrival) == (7, 4)


def test_changes_match_topologies_by_name() -> None:
    old = load_files(files(**{"gone.yaml": ONE.replace("one", "gone")}))
    new = load_files(
        {
            "one.yaml": ONE.replace("hello", "bye"),
            "new.yaml": ONE.replace("one", "new"),
            "policies.yaml": "lateness: 1m\n",
        }
    )
    changes = diff(old, "sha256:old", new)
    assert changes == Changes("sha256:old", ("new",), ("gone",), ("one",), True)
    assert changes.summary() == "added new; removed gone; changed one; policies changed"
    assert diff(None, None, new).summary() == "first version"
    assert diff(new, "sha256:x", new).summary() == "no topology changed"


def version(at: int, arrival: int, text: str = ONE) -> Version:
    return load_record(
        CatalogRecord(files={"one.yaml": text, "policies.yaml": POLICIES}, at=at, deployed=WHO).to_bytes(), arrival
    )


def test_versions_apply_by_time_then_arrival_and_a_key_is_kept_once() -> None:
    vs = CatalogVersions()
    a, b, c, d = (
        version(10, 3, ONE),
        version(5, 4, ONE.replace("hello", "b")),
        version(10, 1, ONE.replace("hello", "c")),
        version(10, 9, ONE),
    )
    for v in (a, b, c):
        assert vs.add(v)
    assert not vs.add(d)  # same folder, same time: the same version
    assert [(v.at, v.arrival) for v in vs.versions()] == [(5, 4), (10, 1), (10, 3)]
    assert vs.in_force(None) is b and vs.in_force(4) is b and vs.in_force(5) is b
    assert vs.in_force(10) is a and vs.newest() is a
    assert vs.after(b) == [c, a]


EVENT = {"event_id": "e1", "customer_id": "c1", "type": "a", "occurred_at": 0}


def test_a_partition_switches_when_its_watermark_reaches_the_version() -> None:
    from streams.events import validate_event

    first, second = version(0, 0), version(100, 1, ONE.replace("hello", "bye"))
    vs = CatalogVersions()
    vs.add(first)
    registry = CollectorRegistry()
    live = LiveCatalog(vs, CatalogMetrics(registry))
    proc = live.processor(0, DictStore(), None, None)
    assert live.add(second)
    assert not live.add(second)

    def take(n: int, t: int) -> list[str]:
        _, decisions = proc.process(
            validate_event({**EVENT, "event_id": f"e{n}", "customer_id": f"c{n}", "occurred_at": t})
        )
        live.advanced(0)
        return [d.action or "" for d in decisions]

    assert take(1, 99) == ["hello"]
    assert live.in_force(0) is first
    assert registry.get_sample_value("tactful_catalog_info", {"hash": first.hash}) == 1
    take(2, 100)  # reaches the version (lateness 0); under the stand-in switch, evaluated before it
    assert live.in_force(0) is second
    assert take(3, 101) == ["bye"]
    assert registry.get_sample_value("tactful_catalog_info", {"hash": second.hash}) == 1
    assert registry.get_sample_value("tactful_catalog_info", {"hash": first.hash}) is None
    assert live.status()["partitions"] == {"0": second.hash}


def test_a_restarted_partition_starts_on_the_version_in_force() -> None:
    first, second = version(0, 0), version(100, 1, ONE.replace("hello", "bye"))
    vs = CatalogVersions()
    for v in (first, second):
        vs.add(v)
    live = LiveCatalog(vs)
    proc = live.processor(2, DictStore(), None, 150)  # stream time restored from the commit metadata
    assert live.in_force(2) is second
    assert proc.engine.catalog is second.catalog


def test_a_refused_record_is_counted_by_reason_and_changes_nothing() -> None:
    vs = CatalogVersions()
    first = version(0, 0)
    vs.add(first)
    live = LiveCatalog(vs)
    live.refuse(CatalogRefused("corrupt", "x"), "at offset 1")  # before the metrics: the start-up read
    registry = CollectorRegistry()
    live.attach(CatalogMetrics(registry))
    live.refuse(CatalogRefused("format", "y"), "at offset 2")
    assert registry.get_sample_value("tactful_catalog_refused_total", {"reason": "corrupt"}) == 1
    assert registry.get_sample_value("tactful_catalog_refused_total", {"reason": "format"}) == 1
    assert vs.versions() == [first]
    # With no partition, the info metric shows the newest version known.
    assert registry.get_sample_value("tactful_catalog_info", {"hash": first.hash}) == 1


@pytest.mark.parametrize(
    ("at", "stream_times", "expected"),
    [
        (None, {}, 1_000),  # nothing processed: now
        (None, {0: 500, 1: 700}, 700),  # the largest committed stream time
        (None, {0: 50}, 100),  # never before the newest version
        (800, {0: 500, 1: 700}, 800),
        (601, {0: 500, 1: 700}, 601),  # just ahead of partition 1's watermark (700 - 100)
    ],
)
def test_the_time_of_a_deploy(at: int | None, stream_times: dict[int, int], expected: int) -> None:
    newest = version(100, 0)
    assert choose_time(at, newest, stream_times, 100, now=1_000) == expected


def test_the_first_version_is_in_force_from_the_first_event() -> None:
    assert choose_time(None, None, {}, 100, now=1_000) == 0
    assert choose_time(500, None, {}, 100, now=1_000) == 500


@pytest.mark.parametrize(
    ("at", "says"),
    [(600, "not ahead of partition 1's committed watermark"), (99, "before the newest version")],
)
def test_a_deploy_time_that_not_every_worker_can_switch_at_is_refused(at: int, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        choose_time(at, version(100, 0), {0: 500, 1: 700}, 100, now=1_000)


def test_export_writes_each_version_whole_and_refuses_a_used_folder(tmp_path: Path) -> None:
    vs = [version(0, 0), version(100, 1, ONE.replace("hello", "bye"))]
    written = export(vs, tmp_path / "out")
    assert [at for at, _ in written] == [0, 100]
    assert read_folder(written[1][1]) == {"one.yaml": ONE.replace("hello", "bye"), "policies.yaml": POLICIES}
    with pytest.raises(ConfigError, match="not empty"):
        export(vs, tmp_path / "out")


def test_a_tombstone_is_skipped_and_takes_no_version_back() -> None:
    from streams.live.catalog.kafka import Raw, load_all

    first = version(0, 0)
    live = LiveCatalog(CatalogVersions())
    load_all(
        [Raw(0, first.record.key, first.record.to_bytes()), Raw(1, first.record.key, None), Raw(2, b"x", b"{")], live
    )
    assert live.versions.versions() == [first]
    assert live.refused == {"corrupt": 1}


def test_a_version_behind_a_partition_s_watermark_is_refused_as_late(caplog: pytest.LogCaptureFixture) -> None:
    """The engine never applies a change in the past (contract 8): the worker keeps what it had."""
    first, late = version(0, 0), version(50, 1, ONE.replace("hello", "bye"))
    vs = CatalogVersions()
    vs.add(first)
    live = LiveCatalog(vs)
    proc = live.processor(1, DictStore(), None, 100)  # watermark 100 (lateness 0)
    assert live.in_force(1) is first
    assert live.add(late) is False
    assert live.in_force(1) is first
    assert proc.engine.catalog is first.catalog
    assert vs.versions() == [first]
    assert live.refused == {"late": 1}
    assert "partition's watermark is already" in caplog.text
