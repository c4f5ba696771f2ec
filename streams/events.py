"""Touchpoint events (contract section 1) and their validation.

Types starting ``tactful.`` are reserved (contract section 9): ``tactful.erase``
(:data:`ERASE_TYPE`) forgets a customer, any other is invalid with the reason
``reserved_type``.

:func:`validate_event` turns a decoded record (a mapping, from JSON or Avro)
into an :class:`Event`, or raises :class:`~streams.errors.InvalidEvent` with a
machine-readable reason. Beyond the contract, hostile payloads are bounded:
the limits below are the project's, documented in ``docs/contract-notes.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from streams.errors import InvalidEvent
from streams.timeutil import MAX_TIME_MS, MIN_TIME_MS, parse_time

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The attributes of an Event built without any: typed as the dict validate_event gives, shared,
# so never written to (nothing writes to an event's attributes; the engine copies what it keeps).
_NO_ATTRIBUTES: dict[str, str] = {}
_ONE_MS = timedelta(milliseconds=1)

TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_.]*")
MAX_EVENT_ID = 256
MAX_CUSTOMER_ID = 128
MAX_TYPE = 64
MAX_CHANNEL = 64
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_KEY = 128
MAX_ATTRIBUTE_VALUE = 1024

# Reasons an event is invalid; they are the dead-letter ``reason`` values.
R_NOT_OBJECT = "not_an_object"
R_EVENT_ID = "invalid_event_id"
R_CUSTOMER_ID = "invalid_customer_id"
R_TYPE = "invalid_type"
R_OCCURRED_AT = "invalid_occurred_at"
R_CHANNEL = "invalid_channel"
R_ATTRIBUTES = "invalid_attributes"
R_RESERVED = "reserved_type"

# Contract section 9: `tactful.*` types are reserved; the one in use forgets a customer.
RESERVED_PREFIX = "tactful."
ERASE_TYPE = "tactful.erase"


class Event(NamedTuple):
    """One validated touchpoint. Times are epoch milliseconds. Read-only.

    A named tuple, not a dataclass: :func:`validate_event` builds one per
    record with a single C call (``tuple.__new__``), where a dataclass's
    generated ``__init__`` cost about a third of a microsecond, a tenth of
    the live engine path. ``attributes`` defaults to one shared empty
    mapping, never to be written to (events are never mutated).
    """

    event_id: str
    customer_id: str
    type: str
    occurred_at: int
    channel: str | None = None
    attributes: dict[str, str] = _NO_ATTRIBUTES

    def to_record(self) -> dict[str, Any]:
        """The Avro / JSON record form (``occurred_at`` stays epoch ms)."""
        return {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "type": self.type,
            "occurred_at": self.occurred_at,
            "channel": self.channel,
            "attributes": dict(self.attributes),
        }


_new_event = tuple.__new__  # Event(...) less its Python-level __new__: one C call per record

# Event types repeat endlessly: remember the valid ones instead of matching each time.
_VALID_TYPES: set[str] = set()
_VALID_TYPES_MAX = 10_000
_STR_ONLY = frozenset({str})


def validate_event(raw: object) -> Event:
    """Check one decoded record against contract section 1.

    Unknown extra fields are ignored; a null optional field counts as absent.
    This is most of the engine's per-event cost, hence the exact-type fast
    paths before the general checks.
    """
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise InvalidEvent(R_NOT_OBJECT, f"an event must be an object, got {type(raw).__name__}")

    event_id = raw.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidEvent(R_EVENT_ID, "event_id must be a non-empty string")
    if len(event_id) > MAX_EVENT_ID:
        raise InvalidEvent(R_EVENT_ID, f"event_id is longer than {MAX_EVENT_ID} characters")

    customer_id = raw.get("customer_id")
    if not isinstance(customer_id, str) or not 1 <= len(customer_id) <= MAX_CUSTOMER_ID:
        raise InvalidEvent(R_CUSTOMER_ID, "customer_id must be a string of 1..128 characters")

    etype = raw.get("type")
    # The type test comes first: a list or an object is unhashable, and the set lookup would raise TypeError.
    if type(etype) is not str or etype not in _VALID_TYPES:
        if not isinstance(etype, str) or len(etype) > MAX_TYPE or not TYPE_PATTERN.fullmatch(etype):
            raise InvalidEvent(R_TYPE, "type must match [a-z][a-z0-9_.]* and be at most 64 characters")
        # Checked before the type is remembered, so a remembered type is never a reserved one.
        if etype.startswith(RESERVED_PREFIX) and etype != ERASE_TYPE:
            raise InvalidEvent(R_RESERVED, f"type {etype!r} is reserved: the only tactful.* type is {ERASE_TYPE}")
        if len(_VALID_TYPES) < _VALID_TYPES_MAX and type(etype) is str:
            _VALID_TYPES.add(etype)

    at = raw.get("occurred_at")
    occurred_at: int
    if type(at) is str and len(at) <= 64:
        try:
            dt = datetime.fromisoformat(at)
        except ValueError:
            dt = None
        occurred_at = (dt - _EPOCH) // _ONE_MS if dt is not None and dt.tzinfo is not None else _slow_time(at)
    elif type(at) is int and MIN_TIME_MS <= at <= MAX_TIME_MS:
        occurred_at = at
    else:
        occurred_at = _slow_time(at)

    channel = raw.get("channel")
    if channel is not None and (not isinstance(channel, str) or not 1 <= len(channel) <= MAX_CHANNEL):
        raise InvalidEvent(R_CHANNEL, "channel must be a string of 1..64 characters")

    attrs_raw = raw.get("attributes")
    attributes: dict[str, str]
    if not attrs_raw:
        if attrs_raw is not None and not isinstance(attrs_raw, Mapping):
            raise InvalidEvent(R_ATTRIBUTES, "attributes must be a map of string to string")
        attributes = {}
    elif type(attrs_raw) is not dict and not isinstance(attrs_raw, Mapping):
        raise InvalidEvent(R_ATTRIBUTES, "attributes must be a map of string to string")
    else:
        if len(attrs_raw) > MAX_ATTRIBUTES:
            raise InvalidEvent(R_ATTRIBUTES, f"more than {MAX_ATTRIBUTES} attributes")
        # The common case, a dict of a few short exact strings, in one pass: for the few
        # attributes an event has, this loop beats the four C passes of the general check.
        if type(attrs_raw) is dict:
            for k, v in attrs_raw.items():
                if (
                    type(k) is not str
                    or type(v) is not str
                    or len(k) > MAX_ATTRIBUTE_KEY
                    or len(v) > MAX_ATTRIBUTE_VALUE
                ):
                    attributes = _checked_attributes(attrs_raw)
                    break
            else:
                # A decoded JSON or Avro map is a fresh dict nobody else holds: keep it, do not copy.
                attributes = attrs_raw
        else:
            attributes = _checked_attributes(attrs_raw)

    return _new_event(Event, (event_id, customer_id, etype, occurred_at, channel, attributes))


def _checked_attributes(attrs: Mapping[Any, Any]) -> dict[str, str]:
    """The general check of a non-empty attributes map: every key and value a string, none too long."""
    values = attrs.values()
    # map/set run in C: far cheaper than a Python loop over many attributes.
    exact = set(map(type, attrs)) <= _STR_ONLY and set(map(type, values)) <= _STR_ONLY
    if not exact and not all(isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()):
        raise InvalidEvent(R_ATTRIBUTES, _not_a_string(attrs))
    if max(map(len, attrs)) > MAX_ATTRIBUTE_KEY or max(map(len, values)) > MAX_ATTRIBUTE_VALUE:
        raise InvalidEvent(R_ATTRIBUTES, _too_long(attrs))
    return attrs if type(attrs) is dict else dict(attrs)


def _shown(key: object) -> str:
    """A key for a message: quoted, and cut short (it may be the over-long one)."""
    text = repr(key)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _not_a_string(attrs: Mapping[Any, Any]) -> str:
    """Which attribute broke "a map of string to string": the first, in the record's order."""
    for key, value in attrs.items():
        if not isinstance(key, str):
            return f"attributes must be a map of string to string: key {_shown(key)} is not a string"
        if not isinstance(value, str):
            return f"attributes must be a map of string to string: attribute {_shown(key)} has value {_shown(value)}"
    return "attributes must be a map of string to string"


def _too_long(attrs: Mapping[str, str]) -> str:
    """Which attribute is over a size limit: the first, in the record's order."""
    for key, value in attrs.items():
        if len(key) > MAX_ATTRIBUTE_KEY:
            return f"attribute key {_shown(key)} is longer than {MAX_ATTRIBUTE_KEY} characters"
        if len(value) > MAX_ATTRIBUTE_VALUE:
            return f"attribute {_shown(key)} is longer than {MAX_ATTRIBUTE_VALUE} characters"
    return "an attribute key or value is too long"


def _slow_time(at: object) -> int:
    if at is None:
        raise InvalidEvent(R_OCCURRED_AT, "occurred_at is required")
    try:
        return parse_time(at)
    except ValueError as exc:
        raise InvalidEvent(R_OCCURRED_AT, str(exc)) from exc
