"""The runtime's catalog hook: a partition switches version at its watermark, restarts on the one in force."""

from __future__ import annotations

import pytest

from streams.codec import avro
from streams.decisions import Kind
from streams.live import metrics as live_metrics
from streams.live.catalog.record import CatalogRecord, Deployed, Version, load_record, read_folder
from streams.live.catalog.versions import CatalogVersions, LiveCatalog
from streams.live.codecs import Codecs
from streams.live.runtime import Runtime, RuntimeIO, StateTable
from streams.settings import Settings
from tests.live.test_runtime import NOW, TOPOLOGIES, Log, Sink, Source, event, on_partition, records, run

MINUTE = 60_000
T = NOW + 30 * MINUTE
WHO = Deployed("ana", "h", 0, "tactful", "topologies")


def versions() -> tuple[Version, Version]:
    files = read_folder(TOPOLOGIES)
    first = load_record(CatalogRecord(files, 0, WHO).to_bytes(), 0)
    without = {k: v for k, v in files.items() if k != "post_purchase_friction.yaml"}
    return first, load_record(CatalogRecord(without, T, WHO).to_bytes(), 1)


def make(live: LiveCatalog, stream_times: dict[int, int] | None = None) -> Runtime:
    log = Log()
    source = Source(log)
    source.stream_times = stream_times or {}
    io = RuntimeIO(
        source=source,
        sink=Sink(log),
        state=StateTable({}, lambda p, k, v: None),
        codecs=Codecs(lambda b: avro.decode(b, avro.local_registry().resolve), lambda d: d.decision_id.encode(), 0),
        metrics=live_metrics.create(),
        catalog=live,
    )
    newest = live.versions.newest()
    assert newest is not None
    # The fake Sink has no transactional commit: at-least-once, named whatever the default.
    settings = Settings.from_flat({"redis_url": "", "processing_guarantee": "at_least_once"})
    return Runtime(settings, newest.catalog, io, clock=lambda: NOW / 1000)


def friction(cust: str, at: int) -> list[tuple[str, bytes]]:
    return [
        (cust, event(f"{cust}-p", cust, "purchase", at, category="phone")),
        (cust, event(f"{cust}-f", cust, "activation_failed", at + 1000)),
        (cust, event(f"{cust}-s", cust, "support_contact", at + 2000, resolved="false")),
    ]


def same_partition(cust: str) -> str:
    """Another customer on ``cust``'s partition."""
    return next(c for i in range(100) if on_partition(c := f"{cust}-{i}") == on_partition(cust))


@pytest.mark.parametrize("deployed", [True, False])
def test_a_partition_switches_at_its_watermark_and_a_revoked_one_is_forgotten(deployed: bool) -> None:
    first, second = versions()
    live = LiveCatalog(CatalogVersions())
    live.add(first)
    if deployed:
        live.add(second)
    rt = make(live)
    p = on_partition("c1")
    before = run(rt.handle(records(*friction("c1", NOW))))
    assert {d.topology for d in before.decisions} == {"post_purchase_friction"}
    assert live.in_force(p) is first
    # The first record past T + lateness moves the watermark to T; a pattern after it is
    # evaluated under the new catalog, which has no post_purchase_friction.
    crossing = ("c1", event("tick", "c1", "clock_tick", T + 10 * MINUTE))
    after = run(rt.handle(records(crossing, *friction(same_partition("c1"), T + 20 * MINUTE), start=3)))
    assert live.in_force(p) is (second if deployed else first)
    fired = [d for d in after.decisions if d.topology == "post_purchase_friction" and d.kind != Kind.RELEASE]
    assert bool(fired) is not deployed
    # Removed at T: its suppressions in force are lifted by RELEASE decisions effective at T (contract 8).
    lifted = [d for d in after.decisions if d.topology == "post_purchase_friction" and d.kind == Kind.RELEASE]
    assert bool(lifted) is deployed and all(d.effective_at == T for d in lifted)
    run(rt.revoke([p]))
    assert str(p) not in live.status()["partitions"]


def test_a_partition_restored_past_t_starts_on_the_version_in_force() -> None:
    first, second = versions()
    live = LiveCatalog(CatalogVersions())
    live.add(first)
    live.add(second)
    p = on_partition("c2")
    rt = make(live, {p: T + 60 * MINUTE})
    out = run(rt.handle(records(*friction("c2", T + 60 * MINUTE))))
    assert live.in_force(p) is second
    assert live.status()["partitions"] == {str(p): second.hash}
    assert not [d for d in out.decisions if d.topology == "post_purchase_friction"]
