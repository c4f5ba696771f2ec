"""Avro records: the Confluent wire format, object container files, record forms.

The schemas in ``avro/*.avsc`` (shipped as ``streams/_avro``) are the single
source for every record tactful reads or writes. Three record forms appear:

* **Avro form**: a dict with exactly the fields of the ``.avsc``; every time is
  epoch milliseconds (an ``int``). :func:`encode` and :func:`write_ocf` take it;
  :func:`decode` and :func:`read_ocf` return it (never ``datetime`` objects).
* **JSON form of a touchpoint**: the fields of contract section 1, as
  :func:`~streams.events.validate_event` accepts them; ``occurred_at`` is epoch
  milliseconds or an ISO-8601 string.
* **JSON form of a decision**: the fields of contract section 5 plus the audit
  ``status`` and ``cause``; times are epoch milliseconds or ISO-8601 strings.

Schema ids without a schema registry: :func:`local_schema_id` is the first four
bytes of the SHA-256 of the schema's Parsing Canonical Form, big-endian, with
the top bit cleared (a positive int32, as Confluent ids are). Parsing Canonical
Form drops docs, defaults and logical types, so the id names exactly the binary
layout a reader needs, and every process computes the same id with no
coordination. With a schema registry the ids are the registry's
(:mod:`streams.codec.registry`), and :func:`decode` reads a record by its
writer's schema against the caller's reader schema.

A worker reads touchpoints with :class:`TouchpointDecoder`: :func:`decode`'s
results and errors, but records of the touchpoint layout are read by code
written for that layout rather than by fastavro's per-call machinery (the
worker's input path, issue 13). It writes decisions with :class:`DecisionEncoder`:
:func:`encode`'s bytes and errors, with records of the engine's types written by
code for the decision layout (the output path). Decisions are read back (the Redis
mirror, the channel client) with :class:`DecisionDecoder`: ``Decision.from_record``
of :func:`decode`, read by code for the decision layout, whose ``inert`` tells from
a record's first fields that it changes no suppression, so the mirror need not
decode it at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, cast

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import to_parsing_canonical_form
from fastavro.write import Writer

from streams.codec import MAX_RECORD_BYTES
from streams.decisions import Decision, Kind, Status, new_decision
from streams.errors import ConfigError, EventsFileError, MalformedRecord, UnknownSchema
from streams.events import Event
from streams.timeutil import parse_time

ParsedSchema = dict[str, Any]
"""A schema as returned by :func:`fastavro.parse_schema`."""

Resolver = Callable[[int], ParsedSchema | None]
"""Schema id -> writer schema; ``None`` or a :class:`LookupError` when unknown."""

TOUCHPOINT = "touchpoint"
DECISION = "decision"

_HEADER = struct.Struct(">BI")  # Confluent wire format: magic byte 0, schema id
_MAGIC = 0
_MAX_SCHEMA_ID = 0xFFFF_FFFF
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

# What fastavro raises on bytes that are not a record of the schema. Found by
# fuzzing: truncated input is EOFError, a bad varint, union or enum index is
# IndexError, bad UTF-8 is UnicodeDecodeError (a ValueError); logical types add
# ValueError / OverflowError for out-of-range times.
_DECODE_ERRORS = (EOFError, IndexError, KeyError, ValueError, OverflowError, struct.error)
_ENCODE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError, struct.error)
_OCF_ERRORS = (*_DECODE_ERRORS, TypeError, zlib.error)

_DECISION_TIMES = ("effective_at", "expires_at", "not_before")
_DECISION_OPTIONAL = ("action", "category", "expires_at", "not_before", "cause")
_DECISION_REQUIRED = (
    "decision_id",
    "customer_id",
    "kind",
    "channel",
    "topology",
    "topology_version",
    "effective_at",
    "evidence",
    "reason",
)


# --- schemas -------------------------------------------------------------------


def schema_path(name: str) -> Path:
    """The ``.avsc`` file for ``name`` (``"touchpoint"`` or ``"touchpoint.avsc"``).

    Looks in ``streams/_avro`` (an installed wheel) first, then ``<repo>/avro``
    (a source checkout). Raises :class:`FileNotFoundError`: a missing schema is
    a broken installation, not bad input.
    """
    filename = name if name.endswith(".avsc") else f"{name}.avsc"
    streams_dir = Path(__file__).resolve().parent.parent
    folders = (streams_dir / "_avro", streams_dir.parent / "avro")
    for folder in folders:
        candidate = folder / filename
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Avro schema {filename} not found in {' or '.join(map(str, folders))}")


@cache
def _schema_json(name: str) -> str:
    return schema_path(name).read_text(encoding="utf-8")


def schema_json(name: str) -> dict[str, Any]:
    """The schema ``name`` as plain JSON (a fresh copy each call, safe to change)."""
    return cast(dict[str, Any], json.loads(_schema_json(name)))


@cache
def load_schema(name: str) -> ParsedSchema:
    """The schema ``name``, parsed by fastavro for writing. Read once, then cached."""
    return cast(ParsedSchema, fastavro.parse_schema(schema_json(name)))


def touchpoint_schema() -> ParsedSchema:
    """``tactful.Touchpoint``, parsed."""
    return load_schema(TOUCHPOINT)


def decision_schema() -> ParsedSchema:
    """``tactful.Decision``, parsed."""
    return load_schema(DECISION)


def local_schema_id(schema: Mapping[str, Any] | str | list[Any]) -> int:
    """The deterministic id of ``schema`` (plain JSON or parsed): see the module doc."""
    canonical = to_parsing_canonical_form(cast(Any, schema))
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


def reading_schema(schema: Mapping[str, Any]) -> ParsedSchema:
    """``schema`` (plain JSON) parsed for decoding, with ``timestamp-millis`` dropped.

    The binary layout is the same, so decoding yields the epoch-millisecond
    ``long`` directly instead of a ``datetime`` we would convert back (about a
    fifth of the decoding time of a touchpoint).
    """
    plain = json.loads(json.dumps(schema))
    _drop_millis(plain)
    return cast(ParsedSchema, fastavro.parse_schema(plain))


def _drop_millis(node: object) -> None:
    if isinstance(node, list):
        for item in node:
            _drop_millis(item)
    elif isinstance(node, dict):
        if node.get("logicalType") == "timestamp-millis":
            del node["logicalType"]
        for key in ("type", "fields", "items", "values"):
            if key in node:
                _drop_millis(node[key])


class LocalRegistry:
    """Schema ids without a schema registry: each schema's id is :func:`local_schema_id`.

    Its :meth:`resolve` is a :data:`Resolver` for :func:`decode`.
    """

    def __init__(self) -> None:
        self._readers: dict[int, ParsedSchema] = {}
        self._canonical: dict[int, str] = {}

    def register(self, schema: Mapping[str, Any]) -> int:
        """Add ``schema`` (plain JSON) and return its id."""
        schema_id = local_schema_id(schema)
        canonical = to_parsing_canonical_form(cast(Any, schema))
        known = self._canonical.get(schema_id)
        if known is not None and known != canonical:
            # 31 bits of SHA-256 make this all but impossible; refuse rather
            # than decode one schema's records with another.
            raise ConfigError(f"Avro schema id {schema_id} is taken by another schema")
        self._canonical[schema_id] = canonical
        self._readers[schema_id] = reading_schema(schema)
        return schema_id

    def resolve(self, schema_id: int) -> ParsedSchema | None:
        """The reading schema for ``schema_id``, or ``None`` when it is not registered."""
        return self._readers.get(schema_id)


@cache
def local_registry() -> LocalRegistry:
    """The registry of the project's own schemas (touchpoint and decision)."""
    registry = LocalRegistry()
    registry.register(schema_json(TOUCHPOINT))
    registry.register(schema_json(DECISION))
    return registry


@cache
def touchpoint_schema_id() -> int:
    """The local id of ``tactful.Touchpoint``."""
    return local_schema_id(schema_json(TOUCHPOINT))


@cache
def decision_schema_id() -> int:
    """The local id of ``tactful.Decision``."""
    return local_schema_id(schema_json(DECISION))


# --- Confluent wire format ---------------------------------------------------------


def encode(record: Mapping[str, Any], schema: ParsedSchema, schema_id: int) -> bytes:
    """An Avro-form ``record`` -> Confluent wire format (magic 0, id, Avro body).

    Raises :class:`MalformedRecord` (``malformed``) when the record does not fit
    the schema and (``too_large``) when the result would exceed
    :data:`MAX_RECORD_BYTES`, so nothing is written that a reader would refuse.
    """
    if not 0 <= schema_id <= _MAX_SCHEMA_ID:
        raise ValueError(f"a schema id is an unsigned 32-bit integer, got {schema_id}")
    buf = io.BytesIO()
    buf.write(_HEADER.pack(_MAGIC, schema_id))
    try:
        fastavro.schemaless_writer(buf, schema, record)
    except _ENCODE_ERRORS as exc:
        raise MalformedRecord("malformed", f"record does not fit Avro schema {schema.get('name')}: {exc}") from exc
    data = buf.getvalue()
    if len(data) > MAX_RECORD_BYTES:
        raise MalformedRecord("too_large", f"encoded record is {len(data)} bytes, more than {MAX_RECORD_BYTES}")
    return data


def decode(data: bytes | bytearray, resolve: Resolver, reader: ParsedSchema | None = None) -> dict[str, Any]:
    """Confluent wire format -> an Avro-form record (times as epoch-ms ints).

    ``reader`` is the schema the caller reads with (a :func:`reading_schema`).
    A record whose writer schema (resolved by id) has the reader's name but is
    another schema, an older or newer version of it, is resolved against the
    reader by Avro's rules: fields the reader lacks are dropped, fields the
    writer lacks take the reader's default. A writer of another name is read
    as written, so a wrong record still reaches the caller's validation.

    Raises :class:`MalformedRecord` with reason ``too_large`` (over
    :data:`MAX_RECORD_BYTES`, checked before anything is parsed), ``malformed``
    (bad magic byte, truncated, undecodable or trailing bytes) or
    ``not_an_object`` (the schema is not a record), and :class:`UnknownSchema`
    (``unknown_schema``) when ``resolve`` does not know the id or its schema
    cannot be read as ``reader``.
    """
    size = len(data)
    if size > MAX_RECORD_BYTES:
        raise MalformedRecord("too_large", f"record is {size} bytes, more than {MAX_RECORD_BYTES}")
    if size < _HEADER.size:
        raise MalformedRecord("malformed", f"record is {size} bytes, shorter than the header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise MalformedRecord("malformed", f"magic byte is {magic}, expected 0")
    schema = _resolve(resolve, schema_id)
    buf = io.BytesIO(data)
    buf.seek(_HEADER.size)
    try:
        if reader is None or schema is reader or schema.get("name") != reader.get("name"):
            record = fastavro.schemaless_reader(buf, schema)
        else:
            record = fastavro.schemaless_reader(buf, schema, reader)
    except SchemaResolutionError as exc:
        raise UnknownSchema(
            "unknown_schema", f"schema id {schema_id} cannot be read as {reader and reader.get('name')}: {exc}"
        ) from exc
    except _DECODE_ERRORS as exc:
        raise MalformedRecord("malformed", f"Avro body does not decode with schema id {schema_id}: {exc}") from exc
    if buf.tell() != size:
        # Leftover bytes mean the writer used another layout than the id says.
        raise MalformedRecord("malformed", f"{size - buf.tell()} bytes left after the record (schema id {schema_id})")
    if not isinstance(record, dict):
        raise MalformedRecord("not_an_object", f"schema id {schema_id} is not a record schema")
    return _millis_inplace(record)


class _General(Exception):
    """The fast touchpoint path met something it leaves to :func:`decode` (which judges it)."""


# Event types, channels and attribute keys repeat: one str object each, not one per event.
# Bounded, as a producer could send any number of distinct values.
_NAMES_MAX = 4096


class TouchpointDecoder:
    """:func:`decode` for touchpoints, read as ``reader`` (the touchpoint :func:`reading_schema`).

    A record whose writer schema has the Parsing Canonical Form of ``tactful.Touchpoint``
    (the local id, or a registry id of the same layout) is read by a decoder written for
    that one layout: fastavro's ``schemaless_reader`` costs about twice as much per
    record, most of it per-call setup (parsing the schema again, a file object, a read call
    per field). Anything the fast path does not read as a plain, well-formed record (a
    negative length, a long varint, a union index other than 0 or 1, a map block with a
    byte size, bad UTF-8, leftover or missing bytes) goes to :func:`decode`, so the result
    and every error are the general decoder's. Event types, channels and attribute keys are
    interned: a million customers' states then share one string per distinct value.
    """

    def __init__(self, resolve: Resolver, reader: ParsedSchema | None) -> None:
        self._resolve = resolve
        self._reader = reader
        self._canonical = to_parsing_canonical_form(schema_json(TOUCHPOINT))
        self._fast: dict[bytes, bool] = {}  # wire header (magic and id) -> the touchpoint layout
        self._names: dict[bytes, str] = {}

    def __call__(self, data: bytes | bytearray) -> dict[str, Any]:
        if len(data) <= MAX_RECORD_BYTES:
            body = data if type(data) is bytes else bytes(data)  # slices as keys: hashable
            head = body[:5]
            fast = self._fast.get(head)
            if fast is None:
                fast = self._is_touchpoint(head)
            if fast:
                try:
                    return self._read(body)
                except (_General, IndexError, UnicodeDecodeError):
                    pass
        return decode(data, self._resolve, self._reader)

    def _is_touchpoint(self, header: bytes) -> bool:
        if len(header) < _HEADER.size or header[0] != _MAGIC:
            return False
        try:
            schema = self._resolve(int.from_bytes(header[1:], "big"))
        except Exception:  # decode() resolves it again and raises what it should
            return False
        if schema is None:
            return False  # not cached: a registry may know it later
        found = to_parsing_canonical_form(cast(Any, schema)) == self._canonical
        self._fast[header] = found
        return found

    def _read(self, b: bytes) -> dict[str, Any]:
        # Zigzag varints: a byte below 0x80 is the whole number, an even one a length >= 0.
        names = self._names
        i = 5
        out: dict[str, Any] = {}
        for key in ("event_id", "customer_id"):
            x = b[i]
            if x < 0x80 and not x & 1:
                i += 1
                n = x >> 1
            else:
                n, i = _long(b, i)
                if n < 0:
                    raise _General
            j = i + n
            out[key] = b[i:j].decode()
            i = j
        x = b[i]
        if x < 0x80 and not x & 1:
            i += 1
            n = x >> 1
        else:
            n, i = _long(b, i)
            if n < 0:
                raise _General
        j = i + n
        raw = b[i:j]
        name = names.get(raw)
        if name is None:
            name = self._name(raw)
        out["type"] = name
        i = j
        x = b[i]
        i += 1
        n = x & 0x7F
        shift = 7
        while x >= 0x80:  # an epoch-ms time takes 6 bytes
            if shift >= 63:
                raise _General
            x = b[i]
            i += 1
            n |= (x & 0x7F) << shift
            shift += 7
        out["occurred_at"] = (n >> 1) ^ -(n & 1)
        x = b[i]
        i += 1
        if x == 0:
            out["channel"] = None
        elif x == 2:
            x = b[i]
            if x < 0x80 and not x & 1:
                i += 1
                n = x >> 1
            else:
                n, i = _long(b, i)
                if n < 0:
                    raise _General
            j = i + n
            raw = b[i:j]
            name = names.get(raw)
            if name is None:
                name = self._name(raw)
            out["channel"] = name
            i = j
        else:
            raise _General
        x = b[i]
        i += 1
        if x == 0:
            out["attributes"] = None
        elif x == 2:
            attributes: dict[str, str] = {}
            while True:
                x = b[i]
                if x < 0x80 and not x & 1:
                    i += 1
                    count = x >> 1
                else:
                    count, i = _long(b, i)
                    if count < 0:
                        raise _General  # a block with its byte size
                if count == 0:
                    break
                for _ in range(count):
                    x = b[i]
                    if x < 0x80 and not x & 1:
                        i += 1
                        n = x >> 1
                    else:
                        n, i = _long(b, i)
                        if n < 0:
                            raise _General
                    j = i + n
                    raw = b[i:j]
                    name = names.get(raw)
                    if name is None:
                        name = self._name(raw)
                    i = j
                    x = b[i]
                    if x < 0x80 and not x & 1:
                        i += 1
                        n = x >> 1
                    else:
                        n, i = _long(b, i)
                        if n < 0:
                            raise _General
                    j = i + n
                    attributes[name] = b[i:j].decode()
                    i = j
            out["attributes"] = attributes
        else:
            raise _General
        if i != len(b):
            raise _General  # short (a slice past the end) or leftover bytes
        return out

    def _name(self, raw: bytes) -> str:
        name = raw.decode()
        if len(self._names) < _NAMES_MAX:
            self._names[raw] = name
        return name


def _long(b: bytes | bytearray, i: int) -> tuple[int, int]:
    """The zigzag varint at ``i`` and the index after it; longer than 9 bytes is left to fastavro."""
    n = 0
    shift = 0
    while True:
        x = b[i]
        i += 1
        n |= (x & 0x7F) << shift
        if x < 0x80:
            return (n >> 1) ^ -(n & 1), i
        shift += 7
        if shift >= 63:
            raise _General


def _resolve(resolve: Resolver, schema_id: int) -> ParsedSchema:
    try:
        schema = resolve(schema_id)
    except LookupError as exc:
        raise UnknownSchema("unknown_schema", f"schema id {schema_id} is not known") from exc
    if schema is None:
        raise UnknownSchema("unknown_schema", f"schema id {schema_id} is not known")
    return schema


class _GeneralEncoding(Exception):
    """The fast decision path met something it leaves to :func:`encode` (which judges it)."""


_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
# Zigzag varints of 0..63, one byte each: string lengths and array counts mostly.
# Times whose varints a DecisionEncoder keeps: about half the times of a replay's decisions
# repeat one of the last few hundred.
_TIMES_KEPT = 256
_SMALL = tuple(bytes(((n << 1),)) for n in range(64))


def _zigzag(n: int) -> bytes:
    """The zigzag varint of a long (the caller has checked the int64 range)."""
    z = (n << 1) ^ (n >> 63)
    if 0x7_FFFF_FFFF < z <= 0x3FF_FFFF_FFFF:  # 6 bytes: an epoch-ms time of 1971..2109
        return bytes(
            (
                (z & 0x7F) | 0x80,
                ((z >> 7) & 0x7F) | 0x80,
                ((z >> 14) & 0x7F) | 0x80,
                ((z >> 21) & 0x7F) | 0x80,
                ((z >> 28) & 0x7F) | 0x80,
                z >> 35,
            )
        )
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _symbols(name: str) -> dict[str, bytes]:
    """The enum ``name``'s symbols of the decision schema -> their index, encoded."""
    for field in schema_json(DECISION)["fields"]:
        if isinstance(field["type"], dict) and field["type"].get("name") == name:
            return {symbol: _SMALL[i] for i, symbol in enumerate(field["type"]["symbols"])}
    raise LookupError(f"no enum {name} in the decision schema")  # pragma: no cover - a broken installation


_DECISION_LAYOUT = (
    "decision_id",
    "customer_id",
    "kind",
    "channel",
    "action",
    "category",
    "topology",
    "topology_version",
    "effective_at",
    "expires_at",
    "not_before",
    "evidence",
    "reason",
    "status",
    "cause",
)


class DecisionEncoder:
    """:func:`encode` of Avro-form decisions with ``schema_id``: the same bytes and the same errors.

    A record that is a plain ``dict`` holding every field of ``tactful.Decision`` with values
    of exactly the types the engine makes (``str``, the :class:`~streams.decisions.Kind` and
    :class:`~streams.decisions.Status` strings, ``int`` within range, ``None`` for a null, a
    list or tuple of ``str`` for the evidence) is written by code for that one layout:
    fastavro's ``schemaless_writer`` costs several times as much per record, most of it
    per-call setup (a file object, the parsed schema walked again, union branches chosen by
    validating the value against each). Anything else (a missing field, a ``bool`` or a
    ``datetime``, a string fastavro would take as another type, an int out of range, a
    surrogate, a record over :data:`MAX_RECORD_BYTES`) goes to :func:`encode`, which writes it
    or raises as it always did. Built for the layout of ``avro/decision.avsc`` (checked: the
    schema's fields and enum symbols are read from it). The varints of the last few hundred
    times are kept: a match's decisions share theirs. :meth:`decision` writes a
    :class:`~streams.decisions.Decision` as ``self(d.to_record())`` does, without the record.
    """

    def __init__(self, schema_id: int) -> None:
        self._schema = decision_schema()
        self._schema_id = schema_id
        names = tuple(f["name"] for f in schema_json(DECISION)["fields"])
        if names != _DECISION_LAYOUT:  # pragma: no cover - the schema changed without this code
            raise ConfigError(f"DecisionEncoder is written for the fields {_DECISION_LAYOUT}, the schema has {names}")
        # An id that does not fit four bytes never takes the fast path: encode() refuses it.
        self._header = _HEADER.pack(_MAGIC, schema_id) if 0 <= schema_id <= _MAX_SCHEMA_ID else None
        self._kinds = _symbols("DecisionKind")
        self._statuses = _symbols("DecisionStatus")
        self._times: dict[int, bytes] = {}

    def __call__(self, record: Mapping[str, Any]) -> bytes:
        if self._header is not None and type(record) is dict:
            r = record
            try:
                data = self._write(
                    r["decision_id"], r["customer_id"], r["kind"], r["channel"], r["action"], r["category"],
                    r["topology"], r["topology_version"], r["effective_at"], r["expires_at"], r["not_before"],
                    r["evidence"], r["reason"], r["status"], r["cause"],
                )  # fmt: skip
            except (_GeneralEncoding, KeyError, TypeError, UnicodeEncodeError):
                pass
            else:
                if len(data) <= MAX_RECORD_BYTES:
                    return data
        return encode(record, self._schema, self._schema_id)

    def decision(self, d: Decision) -> bytes:
        """Exactly ``self(d.to_record())``, without building the record (a tenth of the time)."""
        if self._header is not None:
            try:
                data = self._write(
                    d.decision_id, d.customer_id, d.kind, d.channel, d.action, d.category, d.topology,
                    d.topology_version, d.effective_at, d.expires_at, d.not_before, d.evidence, d.reason,
                    d.status, d.cause,
                )  # fmt: skip
            except (_GeneralEncoding, KeyError, TypeError, UnicodeEncodeError):
                pass
            else:
                if len(data) <= MAX_RECORD_BYTES:
                    return data
        return encode(d.to_record(), self._schema, self._schema_id)

    def _write(
        self,
        decision_id: object,
        customer_id: object,
        kind: object,
        channel: object,
        action: object,
        category: object,
        topology: object,
        topology_version: object,
        effective_at: object,
        expires_at: object,
        not_before: object,
        evidence: object,
        reason: object,
        status: object,
        cause: object,
    ) -> bytes:
        # Written out field by field: a helper call per field costs about an eighth more.
        # The enums are str (or StrEnum) in the engine's records; a hashable non-str that
        # compares equal to a symbol is fastavro's to judge.
        if not isinstance(kind, str) or not isinstance(status, str):
            raise _GeneralEncoding
        out = bytearray(self._header)  # type: ignore[arg-type]  # checked in __call__
        for v in (decision_id, customer_id):
            if type(v) is not str:
                raise _GeneralEncoding
            b = v.encode()  # surrogates raise UnicodeEncodeError: left to encode()
            n = len(b)
            if n < 64:
                out.append(n << 1)
            else:
                out += _zigzag(n)
            out += b
        out += self._kinds[kind]
        for v in (channel, action, category):
            if v is None:
                out.append(0)  # union branch 0, null
                continue
            if type(v) is not str:
                raise _GeneralEncoding
            b = v.encode()
            n = len(b)
            out.append(2)  # union branch 1
            if n < 64:
                out.append(n << 1)
            else:
                out += _zigzag(n)
            out += b
        v = topology
        if type(v) is not str:
            raise _GeneralEncoding
        b = v.encode()
        n = len(b)
        if n < 64:
            out.append(n << 1)
        else:
            out += _zigzag(n)
        out += b
        v = topology_version
        if type(v) is not int or not _INT_MIN <= v <= _INT_MAX:
            raise _GeneralEncoding
        out += _zigzag(v)
        # A match's decisions share their times: the varints of recent ones are kept. The
        # type is checked first, as True and 1.0 are equal to 1 as keys.
        times = self._times
        v = effective_at
        if type(v) is not int:
            raise _GeneralEncoding
        t = times.get(v)
        if t is None:
            t = self._time(v)
        out += t
        for v in (expires_at, not_before):
            if v is None:
                out.append(0)
                continue
            if type(v) is not int:
                raise _GeneralEncoding
            t = times.get(v)
            if t is None:
                t = self._time(v)
            out.append(2)
            out += t
        if type(evidence) is not list and type(evidence) is not tuple:
            raise _GeneralEncoding
        if evidence:  # one block of all items, then the empty block; an empty array is that alone
            count = len(evidence)
            if count < 64:
                out.append(count << 1)
            else:
                out += _zigzag(count)
            for v in evidence:
                if type(v) is not str:
                    raise _GeneralEncoding
                b = v.encode()
                n = len(b)
                if n < 64:
                    out.append(n << 1)
                else:
                    out += _zigzag(n)
                out += b
        out.append(0)
        v = reason
        if type(v) is not str:
            raise _GeneralEncoding
        b = v.encode()
        n = len(b)
        if n < 64:
            out.append(n << 1)
        else:
            out += _zigzag(n)
        out += b
        out += self._statuses[status]
        v = cause
        if v is None:
            out.append(0)
        else:
            if type(v) is not str:
                raise _GeneralEncoding
            b = v.encode()
            n = len(b)
            out.append(2)
            if n < 64:
                out.append(n << 1)
            else:
                out += _zigzag(n)
            out += b
        return bytes(out)

    def _time(self, v: int) -> bytes:
        if not _LONG_MIN <= v <= _LONG_MAX:
            raise _GeneralEncoding
        t = _zigzag(v)
        if len(self._times) >= _TIMES_KEPT:
            self._times.clear()
        self._times[v] = t
        return t


class DecisionDecoder:
    """``Decision.from_record(decode(data, resolve, reader))``: the same decisions and the same errors.

    ``reader`` is the decision :func:`reading_schema`. A record whose writer schema has the
    Parsing Canonical Form of ``tactful.Decision`` (the local id, or a registry id of the
    same layout) is read by code written for that one layout, straight into a
    :class:`~streams.decisions.Decision` (no record dict, no ``from_record``); fastavro's
    per-call setup makes the general path several times dearer. Anything the fast path does
    not read as a plain, well-formed record (a negative length, a varint over nine bytes,
    a union or enum index out of range, an array block with a byte size, bad UTF-8,
    leftover or missing bytes) goes to the general path, so the result and every error are
    its. Channels, actions, categories and topology names are interned.

    :meth:`inert` is the Redis mirror's reason to exist here (issue 13): it reads the
    first fields only and says whether the record is a decision of this layout that
    :func:`streams.mirror.keys.mirror_write` would leave out, so the mirror can pass it
    over undecoded. Built for the layout of ``avro/decision.avsc`` (checked).
    """

    def __init__(self, resolve: Resolver, reader: ParsedSchema | None) -> None:
        names = tuple(f["name"] for f in schema_json(DECISION)["fields"])
        if names != _DECISION_LAYOUT:  # pragma: no cover - the schema changed without this code
            raise ConfigError(f"DecisionDecoder is written for the fields {_DECISION_LAYOUT}, the schema has {names}")
        self._resolve = resolve
        self._reader = reader
        self._canonical = to_parsing_canonical_form(schema_json(DECISION))
        self._fast: dict[bytes, bool] = {}  # wire header (magic and id) -> the decision layout
        self._names: dict[bytes, str] = {}
        # Enum index -> member; the zigzag byte of index k is 2k.
        self._kinds = tuple(Kind(symbol) for symbol in _symbols("DecisionKind"))
        self._statuses = tuple(Status(symbol) for symbol in _symbols("DecisionStatus"))
        self._suppress = _symbols("DecisionKind")[Kind.SUPPRESS][0]
        self._release = _symbols("DecisionKind")[Kind.RELEASE][0]

    def __call__(self, data: bytes | bytearray) -> Decision:
        if len(data) <= MAX_RECORD_BYTES:
            body = data if type(data) is bytes else bytes(data)  # slices as keys: hashable
            head = body[:5]
            fast = self._fast.get(head)
            if fast is None:
                fast = self._is_decision(head)
            if fast:
                try:
                    return self._read(body)
                except (_General, IndexError, UnicodeDecodeError):
                    pass
        return Decision.from_record(decode(data, self._resolve, self._reader))

    def inert(self, data: bytes | bytearray, now_ms: int) -> bool:
        """True when ``data`` is, by its first fields, a decision of this layout that changes no
        suppression as of ``now_ms``: an ENGAGE or a GOAL, one without a channel, or a SUPPRESS
        with no ``expires_at`` or one at or before ``now_ms`` (:func:`~streams.mirror.keys.mirror_write`'s
        rule, minus the status, which comes last and is ``emitted`` on the channel topics).

        False means "read it in full": a SUPPRESS still active, a RELEASE, another layout, an
        unknown id, or bytes this cannot judge. The rest of an inert record is not looked at,
        so a record whose later fields are corrupt is passed over rather than refused.
        """
        if len(data) > MAX_RECORD_BYTES:
            return False
        b = data if type(data) is bytes else bytes(data)
        head = b[:5]
        fast = self._fast.get(head)
        if fast is None:
            fast = self._is_decision(head)
        if not fast:
            return False
        try:
            i = 5
            for _ in range(2):  # decision_id, customer_id
                x = b[i]
                if x < 0x80 and not x & 1:
                    i += 1 + (x >> 1)
                else:
                    n, i = _long(b, i)
                    if n < 0:
                        return False
                    i += n
            kind = b[i]
            if kind != self._suppress and kind != self._release:
                return kind < 8 and not kind & 1  # ENGAGE or GOAL; anything else is the full path's
            branch = b[i + 1]
            if branch == 0:
                return True  # no channel (a GOAL's form): nothing to mirror
            if branch != 2 or kind == self._release:
                return False
            i += 2
            x = b[i]  # channel
            if x < 0x80 and not x & 1:
                i += 1 + (x >> 1)
            else:
                n, i = _long(b, i)
                if n < 0:
                    return False
                i += n
            for _ in range(2):  # action, category: ["null", "string"]
                x = b[i]
                i += 1
                if x == 2:
                    x = b[i]
                    if x < 0x80 and not x & 1:
                        i += 1 + (x >> 1)
                    else:
                        n, i = _long(b, i)
                        if n < 0:
                            return False
                        i += n
                elif x:
                    return False
            x = b[i]  # topology
            if x < 0x80 and not x & 1:
                i += 1 + (x >> 1)
            else:
                n, i = _long(b, i)
                if n < 0:
                    return False
                i += n
            while b[i] >= 0x80:  # topology_version
                i += 1
            i += 1
            while b[i] >= 0x80:  # effective_at
                i += 1
            x = b[i + 1]
            if x == 0:
                return True  # a SUPPRESS without an end: mirror_write leaves it out
            if x != 2:
                return False
            i += 2
            x = b[i]
            n = x & 0x7F
            shift = 7
            while x >= 0x80:  # expires_at; over nine bytes is the full path's
                if shift >= 63:
                    return False
                i += 1
                x = b[i]
                n |= (x & 0x7F) << shift
                shift += 7
            return (n >> 1) ^ -(n & 1) <= now_ms
        except (_General, IndexError):
            return False

    def _is_decision(self, header: bytes) -> bool:
        if len(header) < _HEADER.size or header[0] != _MAGIC:
            return False
        try:
            schema = self._resolve(int.from_bytes(header[1:], "big"))
        except Exception:  # the general path resolves it again and raises what it should
            return False
        if schema is None:
            return False  # not cached: a registry may know it later
        found = to_parsing_canonical_form(cast(Any, schema)) == self._canonical
        self._fast[header] = found
        return found

    def _read(self, b: bytes) -> Decision:
        # Written out field by field, as TouchpointDecoder._read: zigzag varints, where a byte
        # below 0x80 is the whole number and an even one a length >= 0.
        names = self._names
        i = 5
        x = b[i]
        if x < 0x80 and not x & 1:
            i += 1
            n = x >> 1
        else:
            n, i = _long(b, i)
            if n < 0:
                raise _General
        j = i + n
        decision_id = b[i:j].decode()
        i = j
        x = b[i]
        if x < 0x80 and not x & 1:
            i += 1
            n = x >> 1
        else:
            n, i = _long(b, i)
            if n < 0:
                raise _General
        j = i + n
        customer_id = b[i:j].decode()
        i = j
        x = b[i]
        i += 1
        if x & 1 or x >= 8:
            raise _General
        kind = self._kinds[x >> 1]
        texts: list[str | None] = []
        for _ in range(3):  # channel, action, category: ["null", "string"]
            x = b[i]
            i += 1
            if x == 0:
                texts.append(None)
                continue
            if x != 2:
                raise _General
            x = b[i]
            if x < 0x80 and not x & 1:
                i += 1
                n = x >> 1
            else:
                n, i = _long(b, i)
                if n < 0:
                    raise _General
            j = i + n
            raw = b[i:j]
            name = names.get(raw)
            if name is None:
                name = self._name(raw)
            texts.append(name)
            i = j
        x = b[i]
        if x < 0x80 and not x & 1:
            i += 1
            n = x >> 1
        else:
            n, i = _long(b, i)
            if n < 0:
                raise _General
        j = i + n
        raw = b[i:j]
        topology = names.get(raw)
        if topology is None:
            topology = self._name(raw)
        i = j
        version, i = _long(b, i)
        effective_at, i = _long(b, i)
        times: list[int | None] = []
        for _ in range(2):  # expires_at, not_before: ["null", long]
            x = b[i]
            i += 1
            if x == 0:
                times.append(None)
            elif x == 2:
                t, i = _long(b, i)
                times.append(t)
            else:
                raise _General
        evidence: list[str] = []
        while True:
            x = b[i]
            if x < 0x80 and not x & 1:
                i += 1
                count = x >> 1
            else:
                count, i = _long(b, i)
                if count < 0:
                    raise _General  # a block with its byte size
            if count == 0:
                break
            for _ in range(count):
                x = b[i]
                if x < 0x80 and not x & 1:
                    i += 1
                    n = x >> 1
                else:
                    n, i = _long(b, i)
                    if n < 0:
                        raise _General
                j = i + n
                evidence.append(b[i:j].decode())
                i = j
        x = b[i]
        if x < 0x80 and not x & 1:
            i += 1
            n = x >> 1
        else:
            n, i = _long(b, i)
            if n < 0:
                raise _General
        j = i + n
        reason = b[i:j].decode()
        i = j
        x = b[i]
        i += 1
        if x & 1 or x >= 2 * len(self._statuses):
            raise _General
        status = self._statuses[x >> 1]
        x = b[i]
        i += 1
        cause: str | None = None
        if x == 2:
            x = b[i]
            if x < 0x80 and not x & 1:
                i += 1
                n = x >> 1
            else:
                n, i = _long(b, i)
                if n < 0:
                    raise _General
            j = i + n
            cause = b[i:j].decode()
            i = j
        elif x != 0:
            raise _General
        if i != len(b):
            raise _General  # short (a slice past the end) or leftover bytes
        return new_decision(
            decision_id=decision_id, customer_id=customer_id, kind=kind, channel=texts[0], action=texts[1],
            category=texts[2], topology=topology, topology_version=version, effective_at=effective_at,
            expires_at=times[0], not_before=times[1], evidence=tuple(evidence), reason=reason, status=status,
            cause=cause,
        )  # fmt: skip

    def _name(self, raw: bytes) -> str:
        name = raw.decode()
        if len(self._names) < _NAMES_MAX:
            self._names[raw] = name
        return name


def encode_touchpoint(event: Event) -> bytes:
    """A validated event -> wire format with the local ``tactful.Touchpoint`` id."""
    return encode(event_to_avro(event), touchpoint_schema(), touchpoint_schema_id())


def encode_decision(decision: Mapping[str, Any]) -> bytes:
    """A JSON-form decision -> wire format with the local ``tactful.Decision`` id."""
    return encode(decision_to_avro(decision), decision_schema(), decision_schema_id())


# --- object container files --------------------------------------------------------


def read_ocf(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of an Avro object container file, in file order, in Avro form.

    Lazy: the file is opened when iteration starts. Raises
    :class:`EventsFileError` (cause chained) when the file cannot be opened, is
    not an object container file of records, or is corrupt.
    """
    try:
        with open(path, "rb") as fo:
            yield from _ocf_records(fo, os.fspath(path))
    except OSError as exc:
        raise EventsFileError(f"cannot read {os.fspath(path)}: {exc}") from exc


def _ocf_records(fo: BinaryIO, name: str) -> Iterator[dict[str, Any]]:
    try:
        reader = fastavro.reader(fo)
    except _OCF_ERRORS as exc:
        raise EventsFileError(f"{name} is not an Avro object container file: {exc}") from exc
    if not isinstance(reader.writer_schema, dict) or reader.writer_schema.get("type") != "record":
        raise EventsFileError(f"{name}: the file's Avro schema is not a record")
    count = 0
    try:
        for record in reader:
            count += 1
            yield _millis_inplace(cast(dict[str, Any], record))
    except _OCF_ERRORS as exc:
        raise EventsFileError(f"{name}: record {count + 1} cannot be read: {exc}") from exc


def write_ocf(
    path: str | os.PathLike[str] | BinaryIO,
    records: Iterable[Mapping[str, Any]],
    schema: ParsedSchema,
    *,
    codec: str = "deflate",
) -> int:
    """Write Avro-form ``records`` to an object container file; return how many.

    Streams: records are encoded one by one into blocks. Raises
    :class:`MalformedRecord` naming the 1-based record number that does not fit.
    """
    if isinstance(path, (str, os.PathLike)):
        with open(path, "wb") as fo:
            return _write_ocf(fo, records, schema, codec)
    return _write_ocf(path, records, schema, codec)


def _write_ocf(fo: BinaryIO, records: Iterable[Mapping[str, Any]], schema: ParsedSchema, codec: str) -> int:
    writer = Writer(fo, schema, codec=codec)
    count = 0
    for record in records:
        count += 1
        try:
            writer.write(cast(dict[str, Any], record))
        except _ENCODE_ERRORS as exc:
            raise MalformedRecord(
                "malformed", f"record {count} does not fit Avro schema {schema.get('name')}: {exc}"
            ) from exc
    writer.flush()
    return count


# --- record forms ------------------------------------------------------------------


def event_to_avro(event: Event) -> dict[str, Any]:
    """A validated :class:`Event` -> Avro-form touchpoint (no attributes -> null)."""
    return {
        "event_id": event.event_id,
        "customer_id": event.customer_id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "channel": event.channel,
        "attributes": dict(event.attributes) if event.attributes else None,
    }


def touchpoint_to_avro(raw: object) -> dict[str, Any]:
    """A JSON-form touchpoint -> Avro form, without judging it against contract section 1.

    Only what the schema cannot hold is refused, so an event that breaks a
    contract rule but fits the schema (an empty ``event_id``, a bad ``type``) is
    kept and left for :func:`~streams.events.validate_event` to reject where it
    is read. Raises :class:`MalformedRecord` (``not_an_object`` / ``malformed``).
    """
    if not isinstance(raw, Mapping):
        raise MalformedRecord("not_an_object", f"expected an object, got {type(raw).__name__}")
    record: dict[str, Any] = {}
    for key in ("event_id", "customer_id", "type"):
        value = raw.get(key)
        if not isinstance(value, str):
            raise MalformedRecord("malformed", f"{key} must be a string to fit tactful.Touchpoint")
        record[key] = value
    try:
        record["occurred_at"] = parse_time(raw.get("occurred_at"))
    except ValueError as exc:
        raise MalformedRecord("malformed", f"occurred_at cannot be written: {exc}") from exc
    channel = raw.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise MalformedRecord("malformed", "channel must be a string to fit tactful.Touchpoint")
    record["channel"] = channel
    record["attributes"] = _string_map(raw.get("attributes"))
    return record


def _string_map(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise MalformedRecord("malformed", "attributes must map strings to strings")
    return dict(value)


def touchpoint_from_avro(record: Mapping[str, Any]) -> dict[str, Any]:
    """An Avro-decoded touchpoint from any reader -> the dict :func:`validate_event` takes.

    :func:`decode` and :func:`read_ocf` already return this form; this is for
    records decoded elsewhere, whose ``occurred_at`` may be a ``datetime``.
    """
    return _millis_inplace(dict(record))


def decision_to_avro(decision: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-form decision -> Avro form.

    Takes the section-5 fields, with times as epoch milliseconds or ISO-8601
    strings, plus optional ``status`` (default ``emitted``) and ``cause``.
    Missing optional fields become null; extra keys are dropped. Raises
    :class:`MalformedRecord` (``malformed``) when a required field is missing
    or a time does not parse.
    """
    missing = [key for key in _DECISION_REQUIRED if key not in decision]
    if missing:
        raise MalformedRecord("malformed", f"decision lacks {', '.join(missing)}")
    record = {key: decision[key] for key in _DECISION_REQUIRED}
    for key in _DECISION_OPTIONAL:
        record[key] = decision.get(key)
    record["status"] = decision.get("status") or "emitted"
    record["evidence"] = list(decision["evidence"])
    for key in _DECISION_TIMES:
        if record[key] is not None:
            try:
                record[key] = parse_time(record[key])
            except ValueError as exc:
                raise MalformedRecord("malformed", f"decision {key}: {exc}") from exc
    return record


def decision_from_avro(record: Mapping[str, Any]) -> dict[str, Any]:
    """An Avro-form decision -> JSON form with times as epoch-ms ints (any reader's output)."""
    decision = _millis_inplace(dict(record))
    decision["evidence"] = list(decision.get("evidence") or ())
    return decision


def _millis_inplace(record: dict[str, Any]) -> dict[str, Any]:
    # Replacing values of existing keys while iterating is safe: the size stays.
    for key, value in record.items():
        if isinstance(value, datetime):
            record[key] = _to_millis(value)
    return record


def _to_millis(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _ONE_MS
