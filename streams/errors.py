"""Every exception tactful raises on purpose, in one tree.

::

    TactfulError
    ├── ConfigError                 settings or command-line values are wrong
    ├── TopologyError               a topologies folder does not load
    │     (.problems: list[Problem], each naming file, key and what was expected)
    ├── InputError                  one input record cannot be used
    │   ├── InvalidEvent            breaks a rule of contract section 1
    │   ├── MalformedRecord         not JSON / not Avro / not an object, too large
    │   └── UnknownSchema           Confluent wire-format schema id not known
    ├── StateError                  stored per-customer state cannot be decoded
    ├── CatalogRefused              a catalog record does not load (.reason: corrupt, format, invalid, late)
    ├── EventsFileError             the events file cannot be opened or read
    ├── CatalogChangeError          a catalog change comes too late: a watermark is past its time
    └── InfraError                  Kafka, Redis or a local service failed
        ├── MirrorUnavailable       the Redis mirror cannot be written right now
        └── RegistryUnavailable     the schema registry cannot be reached right now

Library exceptions are wrapped where they are caught, with ``raise ... from
exc`` so the cause stays attached. Every :class:`InputError` carries a
machine-readable ``reason`` (the dead-letter reason) and a human ``detail``.
"""

from __future__ import annotations

from dataclasses import dataclass


class TactfulError(Exception):
    """Base of every error tactful raises on purpose."""


class ConfigError(TactfulError):
    """A setting or command-line value is wrong."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One loading problem: which file, which key, what was expected."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"


class TopologyError(TactfulError):
    """A topologies folder (or one file of it) does not load."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InputError(TactfulError):
    """One input record cannot be evaluated; it goes to the dead-letter output."""

    reason: str = "invalid"

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class InvalidEvent(InputError):
    """The record decoded, but breaks a rule of contract section 1."""


class MalformedRecord(InputError):
    """The bytes are not a record at all (bad JSON, bad Avro, too large)."""


class UnknownSchema(InputError):
    """A Confluent wire-format record names a schema id we cannot resolve."""


class StateError(TactfulError):
    """Stored per-customer state cannot be decoded."""


class CatalogRefused(TactfulError):
    """A catalog version record cannot be used: ``reason`` is ``corrupt`` (not a record of
    this shape, or its hash does not match its files), ``format`` (written by a newer
    tactful), ``invalid`` (its topologies do not load) or ``late`` (a partition's
    watermark is already past its time: contract 8 never applies a change in the past)."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class EventsFileError(TactfulError):
    """The events file given to replay cannot be opened or read."""


class InfraError(TactfulError):
    """Kafka, Redis or a local service failed."""


class MirrorUnavailable(InfraError):
    """The Redis suppression mirror cannot be written right now."""


class RegistryUnavailable(InfraError):
    """The schema registry cannot be reached right now (refused, timed out, or a 5xx answer)."""


class CatalogChangeError(TactfulError):
    """A catalog change cannot be scheduled: its time is not after a watermark that follows it (contract 8)."""
