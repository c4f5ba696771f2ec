"""A worker against the real schema registry (Apicurio, started by deploy/local/registry.sh).

Registration and resolution by id, an id the registry does not know on the
dead-letter topic, a newer compatible touchpoint schema read by a running
worker without a restart, and a registry outage that a running worker waits
out (a registry of the test's own, stopped and started again by pid).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streams.codec import avro
from streams.codec.registry import RegistryClient, RegistryConflict, schema_id_of, subject
from streams.decisions import Kind
from streams.live.topics import channels
from streams.topology import load_folder
from tests.integration.conftest import REPO, Namespace, free_port, wait_until
from tests.integration.services import registry_url


@pytest.fixture()
def client(namespace: Namespace) -> RegistryClient:
    url = registry_url()
    # The tier runs with the registry by default; run without one, this file has nothing to test.
    assert url, "TACTFUL_SCHEMA_REGISTRY_URL is set empty: these tests need the registry"
    return RegistryClient(url)


def touchpoint(eid: str, cust: str, etype: str, at: int, **attrs: str) -> dict[str, Any]:
    return {
        "event_id": eid,
        "customer_id": cust,
        "type": etype,
        "occurred_at": at,
        "channel": "app",
        "attributes": attrs or None,
    }


def journey(cust: str, now: int) -> list[dict[str, Any]]:
    """purchase, activation failed, unresolved support contact: one SUPPRESS on ads."""
    return [
        touchpoint("p", cust, "purchase", now, category="tablet"),
        touchpoint("f", cust, "activation_failed", now + 60_000),
        touchpoint("s", cust, "support_contact", now + 120_000, resolved="false"),
    ]


def test_the_worker_registers_its_schemas_and_everything_is_written_with_registry_ids(
    namespace: Namespace, client: RegistryClient
) -> None:
    namespace.worker().wait_ready()
    s = namespace.settings()
    decision_topics = [s.topics.audit] + [s.topics.decision(ch) for ch in channels(load_folder(REPO / "topologies"))]
    mine = {x for x in client.subjects() if x.startswith(namespace.kafka_prefix)}
    assert mine == {subject(t) for t in [s.topics.input, *decision_topics]}
    for name in mine:
        assert client._call("GET", f"/config/{name}")["compatibilityLevel"] == "BACKWARD"
    touchpoint_id = client._call("GET", f"/subjects/{subject(s.topics.input)}/versions/latest")["id"]
    decision_id = client._call("GET", f"/subjects/{subject(s.topics.audit)}/versions/latest")["id"]
    assert touchpoint_id not in (avro.touchpoint_schema_id(), decision_id)

    cust = f"c-{namespace.id}"
    namespace.feed(journey(cust, int(time.time() * 1000)))  # tactful feed's path

    (fed,) = {schema_id_of(m.value()) for m in namespace.read(s.topics.input, lambda got: len(got) >= 3)}
    assert fed == touchpoint_id
    ads = namespace.read(s.topics.decision("ads"), lambda got: len(got) >= 1)
    assert {schema_id_of(m.value()) for m in ads} == {decision_id}
    (suppress,) = namespace.decisions("ads", lambda ds: len(ds) >= 1)  # resolved by id in the registry
    assert (suppress.kind, suppress.category, suppress.evidence) == (Kind.SUPPRESS, "tablet", ("p", "f", "s"))


def test_a_schema_id_the_registry_does_not_know_is_dead_lettered_and_the_partition_goes_on(
    namespace: Namespace, client: RegistryClient
) -> None:
    worker = namespace.worker().wait_ready()
    s = namespace.settings()
    cust = f"c-{namespace.id}"
    unknown = 2_000_000_000  # neither a local id nor one Apicurio has handed out
    assert client.schema(unknown) is None
    touchpoint_id = client._call("GET", f"/subjects/{subject(s.topics.input)}/versions/latest")["id"]
    p, f, sc = journey(cust, int(time.time() * 1000))

    def written(record: dict[str, Any], schema_id: int) -> bytes:
        return avro.encode(avro.touchpoint_to_avro(record), avro.touchpoint_schema(), schema_id)

    stray = written({**p, "event_id": "x"}, unknown)
    values = [written(p, touchpoint_id), stray, written(f, touchpoint_id), written(sc, touchpoint_id)]
    namespace.produce_raw((cust.encode(), v) for v in values)
    (dead,) = namespace.read(s.topics.dlq, lambda got: len(got) >= 1)
    headers = dict(dead.headers())
    assert headers["tactful.reason"] == b"unknown_schema"
    assert headers["tactful.exception"] == b"UnknownSchema"
    assert dead.value() == stray
    (suppress,) = namespace.decisions("ads", lambda ds: len(ds) >= 1)
    assert suppress.evidence == ("p", "f", "s")
    namespace.wait_committed(4)
    assert worker.metrics()['tactful_events_rejected_total{reason="unknown_schema"}'] == 1


def test_a_newer_compatible_touchpoint_schema_is_read_by_the_running_worker(
    namespace: Namespace, client: RegistryClient
) -> None:
    worker = namespace.worker().wait_ready()
    s = namespace.settings()
    now = int(time.time() * 1000)
    first = f"a-{namespace.id}"
    namespace.feed(journey(first, now))  # version 1, as registered by the worker
    namespace.decisions("ads", lambda ds: len(ds) >= 1)

    v2 = avro.schema_json(avro.TOUCHPOINT)
    v2["fields"].append({"name": "campaign", "type": ["null", "string"], "default": None})
    v2_id = client.register(subject(s.topics.input), json.dumps(v2))
    assert client._call("GET", f"/subjects/{subject(s.topics.input)}/versions") == [1, 2]
    # An incompatible version is refused by the BACKWARD rule the worker set.
    broken = avro.schema_json(avro.TOUCHPOINT)
    broken["fields"].append({"name": "required_now", "type": "string"})
    with pytest.raises(RegistryConflict, match="409"):
        client.register(subject(s.topics.input), json.dumps(broken), compatibility=None)

    parsed = fastavro.parse_schema(v2)
    second = f"b-{namespace.id}"
    namespace.produce_raw(
        (second.encode(), avro.encode({**avro.touchpoint_to_avro(r), "campaign": "spring"}, parsed, v2_id))
        for r in journey(second, now + 1000)
    )
    both = namespace.decisions("ads", lambda ds: len(ds) >= 2)
    assert {(d.customer_id, d.evidence) for d in both} == {(first, ("p", "f", "s")), (second, ("p", "f", "s"))}
    namespace.wait_committed(6)
    rejected = {k: v for k, v in worker.metrics().items() if k.startswith("tactful_events_rejected_total{")}
    assert not any(rejected.values())
    assert worker.proc is not None and worker.proc.poll() is None  # the same process all along


class OwnRegistry:
    """A registry of this test's own (own run dir, free port), by deploy/local/registry.sh."""

    def __init__(self, run_dir: Path) -> None:
        self.env = {**os.environ, "TACTFUL_RUN_DIR": str(run_dir), "TACTFUL_REGISTRY_PORT": str(free_port())}
        self.url = self._sh("url").strip()

    def _sh(self, command: str) -> str:
        script = REPO / "deploy" / "local" / "registry.sh"
        done = subprocess.run(
            ["bash", str(script), command], env=self.env, capture_output=True, text=True, timeout=180, check=False
        )
        assert done.returncode == 0, f"registry.sh {command}: {done.stdout}{done.stderr}"
        return done.stdout

    def up(self) -> None:
        self._sh("up")

    def down(self) -> None:
        self._sh("down")


@pytest.fixture()
def own_registry(services: None, tmp_path: Path) -> Iterator[OwnRegistry]:
    # Requested before `namespace`, so it is stopped after the namespace deleted its subjects.
    registry = OwnRegistry(tmp_path / "registry-run")
    registry.up()
    yield registry
    registry.down()


def test_a_running_worker_waits_out_a_registry_outage_without_dead_letters_or_a_restart(
    own_registry: OwnRegistry, namespace: Namespace
) -> None:
    namespace.extra_env["TACTFUL_SCHEMA_REGISTRY_URL"] = own_registry.url
    worker = namespace.worker().wait_ready()
    s = namespace.settings()
    v2 = avro.schema_json(avro.TOUCHPOINT)
    v2["fields"].append({"name": "campaign", "type": ["null", "string"], "default": None})
    v2_id = RegistryClient(own_registry.url).register(subject(s.topics.input), json.dumps(v2))  # new to the worker

    own_registry.down()
    cust = f"c-{namespace.id}"
    parsed = fastavro.parse_schema(v2)
    namespace.produce_raw(
        (cust.encode(), avro.encode({**avro.touchpoint_to_avro(r), "campaign": None}, parsed, v2_id))
        for r in journey(cust, int(time.time() * 1000))
    )
    wait_until(lambda: "wait for the schema registry" in worker.tail(400), 60, "the worker to wait for the registry")
    assert worker.proc is not None and worker.proc.poll() is None
    assert namespace.committed() == 0 and namespace.end_offsets(s.topics.dlq) == 0

    own_registry.up()  # the same run dir: the schemas and their ids are still there
    (suppress,) = namespace.decisions("ads", lambda ds: len(ds) >= 1)
    assert suppress.evidence == ("p", "f", "s")
    namespace.wait_committed(3)
    assert namespace.end_offsets(s.topics.dlq) == 0
    assert worker.proc.poll() is None  # the same process all along
