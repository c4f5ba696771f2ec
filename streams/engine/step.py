"""One step from a decoded record to its outcome, the same in ``replay`` and live.

:attr:`Step.take` takes a decoded record (or the :class:`InputError`
that decoding it raised), validates it, processes it on the partition's
:class:`~streams.engine.Processor`, classifies the outcome and, for a record
that is dead-lettered (invalid or late), builds the :class:`Rejection` with
its reason and detail. Callers keep only what is theirs: ``replay`` counts
and reports; the live runtime re-routes, dead-letters with headers and
counts metrics.

The one live-only decision inside a step, whether a valid event belongs to
this partition at all, is an ``admit`` hook between validation and
processing: an event it refuses is not processed and comes back as
:attr:`Outcome.ROUTED` for the caller to send on.

A live caller also passes the record's input offset, which the processor
keeps in an erased customer's tombstone (contract section 9): see
:mod:`streams.engine.processor`.

Every record, whatever becomes of it, restarts the quiet period of the
processor's idle policy (:mod:`streams.engine.idle`), if it has one. No
Kafka here, and no clock but the one that policy is given. The step runs
once per event in replay's hot loop, so it answers a plain tuple and builds a
rejection only for the few records that have one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from streams.decisions import Decision
from streams.engine.processor import Outcome, Processor
from streams.errors import InputError
from streams.events import Event, validate_event
from streams.timeutil import format_time

Admit = Callable[[Event], bool]
# (outcome, decisions, the event if the record was valid, the rejection if it is dead-lettered)
Stepped = tuple[Outcome, list[Decision], Event | None, "Rejection | None"]

LATE = "late"


class Take(Protocol):
    """A step's entry point: one record (and, live, its input offset) in, its outcome out."""

    def __call__(self, record: object, offset: int | None = None, /) -> Stepped: ...


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record is dead-lettered: the machine reason, the human detail, and the
    validation error when there was one (a late event has none)."""

    reason: str
    detail: str
    error: InputError | None = None

    def as_error(self) -> InputError:
        """The rejection as an :class:`InputError`, for hooks that report errors."""
        return self.error if self.error is not None else InputError(self.reason, self.detail)


def late(event: Event, watermark: int | None) -> Rejection:
    """The rejection of an event that arrived behind its partition's watermark."""
    at = format_time(event.occurred_at)
    if watermark is None:  # pragma: no cover - a late event implies a watermark
        return Rejection(LATE, f"occurred_at {at} is late")
    return Rejection(LATE, f"occurred_at {at} is before the watermark {format_time(watermark)}")


_INVALID, _ROUTED, _LATE = Outcome.INVALID, Outcome.ROUTED, Outcome.LATE  # globals: enum lookups cost


class Step:
    """A partition's step: validate, (admit,) process, classify, reject.

    Call :attr:`take` with each record, in arrival order. It is a closure
    built for the processor (and hook, and idle policy) given, so that the
    common case costs one call: replay's loop runs it 200,000 times a second.
    """

    __slots__ = ("processor", "take")

    def __init__(self, processor: Processor, admit: Admit | None = None) -> None:
        self.processor = processor
        self.take: Take = _step(processor, admit)


def _step(processor: Processor, admit: Admit | None) -> Take:
    process = processor.process
    idle = processor.idle
    validate = validate_event

    if idle is None and admit is None:
        return _plain(processor)
    if idle is not None and admit is not None:
        return _live(processor, admit, idle.heard)

    def take(record: object, offset: int | None = None, /) -> Stepped:
        if idle is not None:
            idle.heard()
        if type(record) is not dict and isinstance(record, InputError):
            return _INVALID, [], None, Rejection(record.reason, record.detail, record)
        try:
            ev = validate(record)
        except InputError as exc:
            return _INVALID, [], None, Rejection(exc.reason, exc.detail, exc.with_traceback(None))
        if admit is not None and not admit(ev):
            return _ROUTED, [], ev, None
        outcome, decisions = process(ev, offset)
        if outcome is _LATE:
            return outcome, decisions, ev, late(ev, processor.watermark)
        return outcome, decisions, ev, None

    return take


def _live(processor: Processor, admit: Admit, heard: Callable[[], None]) -> Take:
    """The step with a hook and an idle policy: a live partition's, once per record it reads."""
    process = processor.process
    validate = validate_event

    def take(record: object, offset: int | None = None, /) -> Stepped:
        heard()
        if type(record) is not dict and isinstance(record, InputError):
            return _INVALID, [], None, Rejection(record.reason, record.detail, record)
        try:
            ev = validate(record)
        except InputError as exc:
            return _INVALID, [], None, Rejection(exc.reason, exc.detail, exc.with_traceback(None))
        if not admit(ev):
            return _ROUTED, [], ev, None
        outcome, decisions = process(ev, offset)
        if outcome is _LATE:
            return outcome, decisions, ev, late(ev, processor.watermark)
        return outcome, decisions, ev, None

    return take


def _plain(processor: Processor) -> Take:
    """The step with no hook and no idle policy: replay's, in its hot loop (no offsets: file order is arrival)."""
    process = processor.process
    validate = validate_event

    def take(record: object, offset: int | None = None, /) -> Stepped:
        if type(record) is not dict and isinstance(record, InputError):
            return _INVALID, [], None, Rejection(record.reason, record.detail, record)
        try:
            ev = validate(record)
        except InputError as exc:
            return _INVALID, [], None, Rejection(exc.reason, exc.detail, exc.with_traceback(None))
        outcome, decisions = process(ev, offset)
        if outcome is _LATE:
            return outcome, decisions, ev, late(ev, processor.watermark)
        return outcome, decisions, ev, None

    return take
