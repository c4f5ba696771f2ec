"""Schema ids from a Confluent-compatible schema registry (``docs/registry.md``).

With ``schema_registry_url`` set, every Avro record tactful writes carries the
id the registry gave its schema, and every id tactful reads is resolved there.
The local ids of :mod:`streams.codec.avro` remain the fallback without a
registry, and stay readable with one (records written before it came in).

Subjects follow Confluent's TopicNameStrategy, ``<topic>-value``. Before a
schema is registered its subject's compatibility is set to ``BACKWARD``:
Apicurio's default is ``NONE``, under which a breaking version would be taken
and only fail later, in a reader. :class:`RegistryClient` speaks the
registry's REST API with the standard library, with a timeout on every call.

:class:`RegistryResolver` is a :data:`~streams.codec.avro.Resolver`. Ids are
cached once resolved (a registry id never changes its schema), so a registry
outage touches only records whose id this process has not seen yet. What
happens to those depends on who reads:

* The worker awaits :meth:`RegistryResolver.prepare` before each batch: it
  resolves the batch's new ids off the event loop, and while the registry
  cannot be reached it retries with backoff (0.5 s doubling to 30 s), so the
  batch waits and no good record is dead-lettered because of an outage. Only
  an id the registry answers it does not know (the API's own "not found") is
  :class:`UnknownSchema` (dead letter ``unknown_schema``); any other error
  answer counts as an outage. A "not found" is kept for :data:`MISSING_TTL`
  seconds so that a burst of such records costs one call.
* Anything else (the command line, the Redis mirror's reader) resolves on
  demand, and an unreachable registry raises :class:`RegistryUnavailable`.

A schema fetched from the registry whose Parsing Canonical Form is one of the
project's own is resolved to the project's parsed schema, so a registry id of
the current touchpoint schema decodes exactly as its local id does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any, cast

from fastavro.schema import SchemaParseException, to_parsing_canonical_form

from streams.codec import avro
from streams.errors import InfraError, RegistryUnavailable

log = logging.getLogger(__name__)

COMPATIBILITY = "BACKWARD"
"""Set on each subject tactful registers into (Apicurio's default is ``NONE``)."""

MISSING_TTL = 5.0
"""Seconds an id the registry said it does not know is taken as unknown without asking again."""

# Pauses between tries of a registration answered 409 (see RegistryClient.register).
CONFLICT_RETRIES = (0.05, 0.1, 0.2, 0.4)

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0

_HEADER = struct.Struct(">BI")
_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_API_HINT = "/apis/ccompat/v7 for Apicurio"


# Confluent's error codes for a subject, version or schema id it does not have.
_NOT_FOUND = frozenset({40401, 40402, 40403})


def _error_code(body: str) -> int | None:
    try:
        code = json.loads(body).get("error_code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None


class RegistryConflict(InfraError):
    """HTTP 409: a schema the subject's compatibility rule refuses (or a creation race, retried)."""


def subject(topic: str) -> str:
    """The subject of ``topic``'s record values (Confluent's TopicNameStrategy)."""
    return f"{topic}-value"


class RegistryClient:
    """The few calls of the Confluent-compatible API tactful makes, over ``urllib``.

    ``url`` is the API's base, e.g. ``http://127.0.0.1:18081/apis/ccompat/v7``.
    A refused connection, a timeout or a 5xx answer raises
    :class:`RegistryUnavailable`; a 409 :class:`RegistryConflict`; any other
    error answer :class:`InfraError`.
    """

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: object = None, *, missing_ok: bool = False) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Accept", _CONTENT_TYPE)
        if data is not None:
            req.add_header("Content-Type", _CONTENT_TYPE)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            # Only the API's own "not found" (Confluent's 404xx codes): a 404 for a wrong
            # base URL must not make every id look unknown.
            if exc.code == 404 and missing_ok and _error_code(detail) in _NOT_FOUND:
                return None
            if exc.code >= 500:
                raise RegistryUnavailable(f"schema registry {self.url}: {method} {path}: {exc.code} {detail}") from exc
            refused = f"schema registry {self.url} refused {method} {path}: {exc.code} {detail}"
            if exc.code == 404 and _error_code(detail) not in _NOT_FOUND:
                refused += f" (no such API path: does the URL end in the API's base, e.g. {_API_HINT}?)"
            raise (RegistryConflict if exc.code == 409 else InfraError)(refused) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise RegistryUnavailable(f"schema registry {self.url} cannot be reached: {exc}") from exc
        try:
            return json.loads(payload) if payload else None
        except ValueError as exc:
            raise InfraError(f"schema registry {self.url}: {method} {path} answered no JSON") from exc

    @staticmethod
    def _quote(name: str) -> str:
        return urllib.parse.quote(name, safe="")

    def set_compatibility(self, subject: str, level: str = COMPATIBILITY) -> None:
        self._call("PUT", f"/config/{self._quote(subject)}", {"compatibility": level})

    def register(self, subject: str, schema: str, compatibility: str | None = COMPATIBILITY) -> int:
        """Register ``schema`` (Avro JSON text) under ``subject``; return its id.

        The subject's compatibility is set first (unless ``compatibility`` is
        None). A schema already in the subject gets its existing id. A schema
        the compatibility rule refuses raises :class:`RegistryConflict` (HTTP 409).

        Apicurio answers 409 too when two clients create the same new subject
        (or its compatibility rule) at once, as workers starting together do: the
        loser's second try finds the subject and gets the id. So a 409 is tried
        again a few times (under a second in all) before it is taken for a refusal.
        """
        for pause in (*CONFLICT_RETRIES, None):
            try:
                return self._register(subject, schema, compatibility)
            except RegistryConflict:
                if pause is None:
                    raise
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _register(self, subject: str, schema: str, compatibility: str | None) -> int:
        if compatibility is not None:
            self.set_compatibility(subject, compatibility)
        answer = self._call("POST", f"/subjects/{self._quote(subject)}/versions", {"schema": schema})
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), int):
            raise InfraError(f"schema registry {self.url} answered {answer!r} to a registration")
        return int(answer["id"])

    def schema(self, schema_id: int) -> tuple[str, str] | None:
        """(schema type, schema text) of ``schema_id``, or None when the registry does not know it."""
        answer = self._call("GET", f"/schemas/ids/{int(schema_id)}", missing_ok=True)
        if answer is None:
            return None
        if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
            raise InfraError(f"schema registry {self.url} answered {answer!r} for schema id {schema_id}")
        return str(answer.get("schemaType") or "AVRO"), answer["schema"]

    def subjects(self) -> list[str]:
        answer = self._call("GET", "/subjects")
        return [str(s) for s in answer] if isinstance(answer, list) else []

    def delete_subject(self, subject: str) -> None:
        """Delete ``subject`` for good (soft, then permanent, as Confluent requires)."""
        quoted = self._quote(subject)
        self._call("DELETE", f"/subjects/{quoted}", missing_ok=True)
        self._call("DELETE", f"/subjects/{quoted}?permanent=true", missing_ok=True)


def schema_id_of(value: bytes | bytearray | None) -> int | None:
    """The schema id in a wire-format record's header; None when it has no valid header."""
    if value is None or len(value) < _HEADER.size or value[0] != 0:
        return None
    return int(_HEADER.unpack_from(value)[1])


class RegistryResolver:
    """A :data:`~streams.codec.avro.Resolver` over local ids, then the registry (cached).

    See the module documentation for what an outage does.
    """

    def __init__(
        self,
        client: RegistryClient,
        local: avro.LocalRegistry | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.local = local if local is not None else avro.local_registry()
        self.clock = clock
        self.sleep = sleep
        self._known: dict[int, avro.ParsedSchema | None] = {}  # None: known, but no Avro record schema
        self._missing: dict[int, float] = {}  # id -> when the registry said it does not know it
        self.outages = 0  # calls that found the registry unreachable (for tests and logs)
        own = (avro.TOUCHPOINT, avro.DECISION)
        self._by_canonical = {to_parsing_canonical_form(cast(Any, avro.schema_json(n))): n for n in own}

    def remember(self, schema_id: int, name: str) -> None:
        """Note that ``schema_id`` is the project's own schema ``name`` (just registered)."""
        self._known[schema_id] = self.local.resolve(avro.local_schema_id(avro.schema_json(name)))

    def resolve(self, schema_id: int) -> avro.ParsedSchema | None:
        found = self.local.resolve(schema_id)
        if found is not None:
            return found
        if schema_id in self._known:
            return self._known[schema_id]
        if self._recently_missing(schema_id):
            return None
        return self._fetch(schema_id)

    def _recently_missing(self, schema_id: int) -> bool:
        when = self._missing.get(schema_id)
        return when is not None and self.clock() - when < MISSING_TTL

    def _fetch(self, schema_id: int) -> avro.ParsedSchema | None:
        try:
            found = self.client.schema(schema_id)
        except RegistryUnavailable:
            self.outages += 1
            raise
        except InfraError as exc:
            # Neither a schema nor the API's "not found" (a 401/403, a 404 from outside the
            # API, an answer that is not JSON): the registry is not answering as one, which
            # is an outage to wait out, never a reason to dead-letter good records.
            self.outages += 1
            raise RegistryUnavailable(str(exc)) from exc
        if found is None:
            self._missing[schema_id] = self.clock()
            return None
        kind, text = found
        schema = self._parse(kind, text)
        self._known[schema_id] = schema
        self._missing.pop(schema_id, None)
        return schema

    def _parse(self, kind: str, text: str) -> avro.ParsedSchema | None:
        if kind.upper() != "AVRO":
            return None
        try:
            plain = json.loads(text)
            canonical = to_parsing_canonical_form(plain)
        except (ValueError, SchemaParseException, KeyError, TypeError):
            return None
        own = self._by_canonical.get(canonical)
        if own is not None:
            return self.local.resolve(avro.local_schema_id(avro.schema_json(own)))
        if not isinstance(plain, dict) or plain.get("type") != "record":
            return None
        try:
            return avro.reading_schema(plain)
        except (SchemaParseException, ValueError, KeyError, TypeError):
            return None

    def unresolved(self, ids: Iterable[int]) -> list[int]:
        """The ids of ``ids`` that :meth:`resolve` would have to ask the registry about."""
        return sorted(
            i
            for i in set(ids)
            if self.local.resolve(i) is None and i not in self._known and not self._recently_missing(i)
        )

    async def prepare(self, values: Iterable[bytes | bytearray | None]) -> None:
        """Resolve the schema ids of ``values`` not resolved yet, off the event loop.

        While the registry cannot be reached, retries with backoff until it can:
        the caller waits, and no record is taken for unknown because of an outage.
        """
        todo = self.unresolved(i for i in map(schema_id_of, values) if i is not None)
        delay = BACKOFF_FIRST
        while todo:
            try:
                for schema_id in todo:
                    await asyncio.to_thread(self._fetch, schema_id)
                return
            except RegistryUnavailable as exc:
                log.warning("schema ids %s wait for the schema registry (retry in %.1fs): %s", todo, delay, exc)
                await self.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                todo = self.unresolved(todo)


def register_own(
    client: RegistryClient,
    resolver: RegistryResolver,
    name: str,
    topics: Iterable[str],
    *,
    timeout: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Register the project's schema ``name`` under each topic's subject; return its id.

    Waits for an unreachable registry with backoff up to ``timeout`` seconds
    (as a starting worker waits for its brokers), then raises
    :class:`RegistryUnavailable`. The id is the same in every subject (the
    registry's ids name contents), and is remembered by ``resolver``.
    """
    text = avro.schema_path(name).read_text(encoding="utf-8")
    deadline = clock() + timeout
    delay = BACKOFF_FIRST
    while True:
        try:
            ids = {client.register(subject(topic), text) for topic in topics}
            break
        except RegistryUnavailable as exc:
            if clock() + delay > deadline:
                raise RegistryUnavailable(f"{exc} (gave up after {timeout:.0f}s)") from exc
            log.warning("waiting for the schema registry (retry in %.1fs): %s", delay, exc)
            sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
    if len(ids) != 1:
        raise InfraError(f"schema registry {client.url} gave {name} different ids in different subjects: {ids}")
    schema_id = ids.pop()
    resolver.remember(schema_id, name)
    return schema_id
