"""Schema registry ids: exact wire bytes, the resolver's cache and outage rules, the worker's codecs.

The registry here is an in-process fake of the Confluent-compatible API (the
calls tactful makes, with Apicurio's answers); tests/integration/test_registry.py
runs the same paths against the real Apicurio.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from streams.codec import avro
from streams.codec import registry as reg
from streams.decisions import Decision
from streams.errors import InfraError, RegistryUnavailable, UnknownSchema
from streams.live import metrics as live_metrics
from streams.live.codecs import Codecs, make_codecs, resolver, touchpoint_schema_id
from streams.live.feed import encode_event
from streams.live.limits import RecordLimits
from streams.live.runtime import H_REASON, Record, Runtime, RuntimeIO, StateTable
from streams.settings import Settings
from streams.topology import load_folder
from tests.live.test_runtime import NOW, Log, Sink, Source, on_partition

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


class FakeRegistry:
    """Subjects, content ids (same schema text, same id) and per-subject compatibility.

    ``down`` makes every call answer 503 (counted in ``refused``); ``lookups`` counts
    the GET /schemas/ids calls answered.
    """

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.config: dict[str, str] = {}
        self.down = False
        self.refused = 0  # calls answered 503 while down
        self.conflicts = 0  # registrations still to answer 409, as Apicurio does to a creation race
        self.lookups = 0
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/apis/ccompat/v7"

    def close(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()

    def add(self, subject: str, text: str) -> int:
        sid = next((i for i, known in self.schemas.items() if known == text), len(self.schemas) + 1)
        self.schemas[sid] = text
        versions = self.subjects.setdefault(subject, [])
        if sid not in versions:
            versions.append(sid)
        return sid

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")

            def _route(self, method: str) -> None:
                if fake.down:
                    fake.refused += 1
                    self._send(503, {"message": "down", "error_code": 50301})
                    return
                if not self.path.startswith("/apis/ccompat/v7/"):
                    self._send(404, {"message": "RESTEASY003210: no resource", "error_code": 404})
                    return
                path = self.path.removeprefix("/apis/ccompat/v7")
                parts = [p for p in path.split("?")[0].split("/") if p]
                if method == "GET" and parts[:2] == ["schemas", "ids"]:
                    fake.lookups += 1
                    text = fake.schemas.get(int(parts[2]))
                    if text is None:
                        self._send(404, {"message": "no such id", "error_code": 40403})
                    else:
                        self._send(200, {"schema": text, "references": []})
                elif method == "PUT" and parts[0] == "config":
                    fake.config[parts[1]] = self._body()["compatibility"]
                    self._send(200, {"compatibility": fake.config[parts[1]]})
                elif method == "POST" and parts[0] == "subjects" and parts[2:] == ["versions"]:
                    if fake.conflicts:
                        fake.conflicts -= 1
                        self._send(409, {"message": "An artifact with ID already exists.", "error_code": 409})
                    else:
                        self._send(200, {"id": fake.add(parts[1], self._body()["schema"])})
                elif method == "GET" and parts == ["subjects"]:
                    self._send(200, list(fake.subjects))
                else:
                    self._send(404, {"message": f"RESTEASY003210: no resource {path}", "error_code": 0})

            def do_GET(self) -> None:
                self._route("GET")

            def do_PUT(self) -> None:
                self._route("PUT")

            def do_POST(self) -> None:
                self._route("POST")

        return Handler


@pytest.fixture()
def fake() -> Iterator[FakeRegistry]:
    registry = FakeRegistry()
    yield registry
    registry.close()


def settings(url: str, **flat: Any) -> Settings:
    return Settings.from_flat({"schema_registry_url": url, "redis_url": "", "start_timeout": 5, **flat})


def touchpoint_v2() -> dict[str, Any]:
    """The touchpoint schema with one optional field added (a BACKWARD-compatible version)."""
    schema = avro.schema_json(avro.TOUCHPOINT)
    schema["fields"].append({"name": "campaign", "type": ["null", "string"], "default": None})
    return schema


RAW = {"event_id": "e1", "customer_id": "c1", "type": "page_view", "occurred_at": 1000, "channel": None}
# event_id "e1", customer_id "c1", type "page_view", occurred_at 1000 (zigzag varint e8 0f),
# channel null (union branch 0), attributes null (union branch 0).
BODY = b"\x04e1" + b"\x04c1" + b"\x12page_view" + b"\xd0\x0f" + b"\x00" + b"\x00"


# --- wire format with registry ids ---------------------------------------------------------


@pytest.mark.parametrize(
    ("schema_id", "header"),
    [(1, b"\x00\x00\x00\x00\x01"), (258, b"\x00\x00\x00\x01\x02"), (0x7FFF_FFFF, b"\x00\x7f\xff\xff\xff")],
)
def test_a_touchpoint_written_with_a_registry_id_is_magic_zero_the_id_big_endian_then_the_body(
    schema_id: int, header: bytes
) -> None:
    key, value = encode_event(RAW, schema_id)
    assert key == b"c1"
    assert value == header + BODY
    assert reg.schema_id_of(value) == schema_id


def test_the_local_id_is_still_the_default() -> None:
    _, value = encode_event(RAW)
    assert value == b"\x00" + avro.touchpoint_schema_id().to_bytes(4, "big") + BODY


@pytest.mark.parametrize("value", [None, b"", b"\x00\x00\x00\x01", b"\x01\x00\x00\x00\x01", b'{"a":1}'])
def test_no_schema_id_without_a_wire_format_header(value: bytes | None) -> None:
    assert reg.schema_id_of(value) is None


def test_a_decision_is_written_with_the_id_the_registry_gave_it(fake: FakeRegistry) -> None:
    codecs = make_codecs(settings(fake.url), ["decisions.sms"])
    assert fake.config == {
        "decisions.audit-value": "BACKWARD",
        "decisions.sms-value": "BACKWARD",
        "touchpoints-value": "BACKWARD",
    }
    decision_id = fake.subjects["decisions.audit-value"][0]
    assert fake.subjects["decisions.sms-value"] == [decision_id]
    assert codecs.decision_schema_id == decision_id
    decision = Decision.from_record(avro.decision_to_avro({**DECISION_JSON}))
    data = codecs.encode_decision(decision)
    assert data[:5] == b"\x00" + decision_id.to_bytes(4, "big")
    assert data[5:] == avro.encode_decision(DECISION_JSON)[5:]
    assert codecs.decode_decision(data) == decision


DECISION_JSON: dict[str, Any] = {
    "decision_id": "d1",
    "customer_id": "c1",
    "kind": "ENGAGE",
    "channel": "sms",
    "action": "nudge",
    "topology": "t",
    "topology_version": 1,
    "effective_at": 1000,
    "evidence": ["e1"],
    "reason": "r",
}


def test_the_feed_s_id_is_the_registry_s_and_the_same_as_the_worker_s(fake: FakeRegistry) -> None:
    s = settings(fake.url)
    fed = touchpoint_schema_id(s)
    make_codecs(s)
    assert fake.subjects["touchpoints-value"] == [fed]
    assert touchpoint_schema_id(settings("")) == avro.touchpoint_schema_id()


# --- resolving -----------------------------------------------------------------------------


def test_an_own_schema_from_the_registry_decodes_as_the_local_one(fake: FakeRegistry) -> None:
    sid = fake.add("touchpoints-value", avro.schema_path(avro.TOUCHPOINT).read_text())
    resolve = resolver(settings(fake.url))
    assert resolve(sid) is avro.local_registry().resolve(avro.touchpoint_schema_id())
    assert avro.decode(encode_event(RAW, sid)[1], resolve)["event_id"] == "e1"


def test_local_ids_are_still_understood_with_a_registry(fake: FakeRegistry) -> None:
    resolve = resolver(settings(fake.url))
    assert avro.decode(encode_event(RAW)[1], resolve)["customer_id"] == "c1"
    assert fake.lookups == 0


def test_an_id_the_registry_does_not_know_is_unknown_schema_and_asked_once_per_ttl(fake: FakeRegistry) -> None:
    now = [100.0]
    resolver_ = reg.RegistryResolver(reg.RegistryClient(fake.url), clock=lambda: now[0])
    data = b"\x00\x00\x00\x03\x09" + BODY
    for _ in range(3):
        with pytest.raises(UnknownSchema) as info:
            avro.decode(data, resolver_.resolve)
        assert info.value.reason == "unknown_schema"
    assert fake.lookups == 1
    # Registered meanwhile, and asked again once the answer is older than MISSING_TTL.
    fake.schemas[0x309] = avro.schema_path(avro.TOUCHPOINT).read_text()
    now[0] += reg.MISSING_TTL
    assert avro.decode(data, resolver_.resolve)["event_id"] == "e1"
    assert fake.lookups == 2


def test_a_resolved_id_is_cached(fake: FakeRegistry) -> None:
    sid = fake.add("touchpoints-value", json.dumps(touchpoint_v2()))
    resolve = resolver(settings(fake.url))
    assert resolve(sid) is resolve(sid)
    fake.down = True
    assert resolve(sid) is not None  # an outage does not touch what is cached
    assert fake.lookups == 1


def test_an_unreachable_registry_is_not_an_unknown_id(fake: FakeRegistry) -> None:
    fake.down = True
    with pytest.raises(RegistryUnavailable):
        resolver(settings(fake.url))(42)
    fake.close()
    with pytest.raises(RegistryUnavailable, match="cannot be reached"):
        resolver(settings(fake.url))(42)


def test_a_404_that_is_not_the_api_s_own_is_an_error_not_an_unknown_id(fake: FakeRegistry) -> None:
    client = reg.RegistryClient(fake.url.removesuffix("/apis/ccompat/v7"))  # the API's path left out
    with pytest.raises(InfraError, match="refused GET /schemas/ids/1"):
        client.schema(1)


def test_a_newer_compatible_version_is_read_against_the_reader_schema(fake: FakeRegistry) -> None:
    v2 = touchpoint_v2()
    sid = fake.add("touchpoints-value", json.dumps(v2))
    record = {**avro.touchpoint_to_avro(RAW), "campaign": "spring"}
    data = avro.encode(record, _parsed(v2), sid)
    codecs = make_codecs(settings(fake.url))
    decoded = codecs.decode_touchpoint(data)
    assert "campaign" not in decoded  # dropped: the worker reads with its own schema
    assert decoded == avro.touchpoint_to_avro(RAW)
    # Without a reader the writer's fields come through as written.
    assert avro.decode(data, resolver(settings(fake.url)))["campaign"] == "spring"


def test_a_writer_schema_the_reader_cannot_read_is_unknown_schema(fake: FakeRegistry) -> None:
    other = avro.schema_json(avro.TOUCHPOINT)
    other["fields"] = [f for f in other["fields"] if f["name"] != "event_id"]  # a required field gone
    sid = fake.add("elsewhere-value", json.dumps(other))
    body = avro.encode({k: v for k, v in avro.touchpoint_to_avro(RAW).items() if k != "event_id"}, _parsed(other), sid)
    codecs = make_codecs(settings(fake.url))
    with pytest.raises(UnknownSchema, match=f"schema id {sid} cannot be read as tactful.Touchpoint"):
        codecs.decode_touchpoint(body)


def _parsed(schema: dict[str, Any]) -> avro.ParsedSchema:
    import fastavro

    parsed: avro.ParsedSchema = fastavro.parse_schema(schema)
    return parsed


# --- outages ---------------------------------------------------------------------------------


def test_prepare_waits_out_an_outage_with_backoff_then_resolves(fake: FakeRegistry) -> None:
    sid = fake.add("touchpoints-value", avro.schema_path(avro.TOUCHPOINT).read_text())
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 4:
            fake.down = False

    resolver_ = reg.RegistryResolver(reg.RegistryClient(fake.url), sleep=sleep)
    fake.down = True
    data = encode_event(RAW, sid)[1]
    asyncio.run(resolver_.prepare([data, data, None, b"junk"]))
    assert waits == [0.5, 1.0, 2.0, 4.0]
    assert resolver_.outages == 4
    fake.down = True  # resolved before: no call needed now
    assert avro.decode(data, resolver_.resolve)["event_id"] == "e1"


def test_an_error_answer_that_is_not_not_found_is_waited_out_not_taken_for_unknown(fake: FakeRegistry) -> None:
    sid = fake.add("touchpoints-value", avro.schema_path(avro.TOUCHPOINT).read_text())
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        resolver_.client = reg.RegistryClient(fake.url)  # the URL put right

    # The API's path left out: every call is a 404 from outside the API.
    resolver_ = reg.RegistryResolver(reg.RegistryClient(fake.url.removesuffix("/apis/ccompat/v7")), sleep=sleep)
    data = encode_event(RAW, sid)[1]
    asyncio.run(resolver_.prepare([data]))
    assert waits == [0.5]
    assert avro.decode(data, resolver_.resolve)["event_id"] == "e1"


def test_backoff_stops_growing_at_its_cap(fake: FakeRegistry) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        fake.down = len(waits) < 9

    fake.down = True
    resolver_ = reg.RegistryResolver(reg.RegistryClient(fake.url), sleep=sleep)
    asyncio.run(resolver_.prepare([b"\x00\x00\x00\x00\x63"]))
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    with pytest.raises(UnknownSchema):  # answered at last: the registry does not know it
        avro.decode(b"\x00\x00\x00\x00\x63" + BODY, resolver_.resolve)


def test_a_worker_waits_for_the_registry_at_start_then_gives_up_with_one_error(fake: FakeRegistry) -> None:
    fake.down = True
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    client = reg.RegistryClient(fake.url)
    with pytest.raises(RegistryUnavailable, match="gave up after 5s"):
        reg.register_own(
            client, reg.RegistryResolver(client), avro.TOUCHPOINT, ["t"], timeout=5, clock=lambda: now[0], sleep=sleep
        )
    assert 3.0 <= now[0] <= 5.0


def test_a_registration_race_answered_409_is_tried_again(fake: FakeRegistry) -> None:
    fake.conflicts = len(reg.CONFLICT_RETRIES)
    client = reg.RegistryClient(fake.url)
    assert reg.register_own(client, reg.RegistryResolver(client), avro.TOUCHPOINT, ["t"]) == 1
    assert fake.conflicts == 0


def test_a_409_that_stays_is_a_refusal_with_the_registry_s_reason(fake: FakeRegistry) -> None:
    fake.conflicts = len(reg.CONFLICT_RETRIES) + 1
    client = reg.RegistryClient(fake.url)
    with pytest.raises(reg.RegistryConflict, match=r"409 .*already exists"):
        reg.register_own(client, reg.RegistryResolver(client), avro.TOUCHPOINT, ["t"])
    assert fake.conflicts == 0 and fake.subjects == {}


# --- the runtime with registry codecs ----------------------------------------------------------


def runtime(codecs: Codecs, log: Log) -> Runtime:
    io = RuntimeIO(
        source=Source(log),
        sink=Sink(log),
        state=StateTable({}, lambda p, k, v: log.effects.append(("state", (p, k, v)))),
        codecs=codecs,
        metrics=live_metrics.create(),
        limits=RecordLimits(),
    )
    # The fake Sink has no transactional commit: at-least-once, named whatever the default.
    settings = Settings.from_flat({"redis_url": "", "processing_guarantee": "at_least_once"})
    return Runtime(settings, load_folder(TOPOLOGIES), io, clock=lambda: NOW / 1000)


def batch(*values: bytes) -> list[Record]:
    p = on_partition("c1")
    return [Record("touchpoints", p, i, b"c1", v, (), NOW / 1000) for i, v in enumerate(values)]


def purchase(schema: avro.ParsedSchema, sid: int, eid: str, **extra: Any) -> bytes:
    rec = {
        "event_id": eid,
        "customer_id": "c1",
        "type": "purchase",
        "occurred_at": NOW,
        "channel": "web",
        "attributes": {"category": "phone"},
        **extra,
    }
    return avro.encode(rec, schema, sid)


def test_the_runtime_dead_letters_an_unknown_id_as_unknown_schema_and_goes_on(fake: FakeRegistry) -> None:
    codecs = make_codecs(settings(fake.url))
    sid = fake.subjects["touchpoints-value"][0]
    log = Log()
    rt = runtime(codecs, log)
    v2_id = fake.add("touchpoints-value", json.dumps(touchpoint_v2()))
    outcome = asyncio.run(
        rt.handle(
            batch(
                purchase(avro.touchpoint_schema(), 999, "unknown"),
                purchase(avro.touchpoint_schema(), sid, "v1"),
                purchase(_parsed(touchpoint_v2()), v2_id, "v2", campaign="spring"),
            )
        )
    )
    dlq = [e[1] for e in log.effects if e[0] == "acked" and e[1][0] == "touchpoints.dlq"]
    assert [h[H_REASON] for *_, h in dlq] == [b"unknown_schema"]
    assert rt.metrics.rejected.labels("unknown_schema")._value.get() == 1
    assert outcome.rejected == 1
    assert sum(outcome.types.values()) == 2  # both good records taken in, the newer version among them


def test_the_runtime_waits_for_the_registry_instead_of_dead_lettering(fake: FakeRegistry) -> None:
    codecs = make_codecs(settings(fake.url))
    v2_id = fake.add("touchpoints-value", json.dumps(touchpoint_v2()))
    log = Log()
    rt = runtime(codecs, log)
    fake.down = True

    async def scenario() -> Any:
        handled = asyncio.ensure_future(rt.handle(batch(purchase(_parsed(touchpoint_v2()), v2_id, "v2"))))
        while fake.refused < 2:  # two failed tries: the batch is waiting, with backoff
            assert not handled.done()
            await asyncio.sleep(0.05)
        assert not handled.done()
        fake.down = False
        return await handled

    outcome = asyncio.run(scenario())
    assert outcome.rejected == 0
    assert sum(outcome.types.values()) == 1
    assert not [e for e in log.effects if e[0] == "acked" and e[1][0] == "touchpoints.dlq"]
