"""A catalog version as one Kafka record: its format, its content hash, loading it back.

A version is a whole topologies folder (every ``*.yaml`` file the loader
reads, ``policies.yaml`` included) with the time ``at`` from which it governs
(contract section 8), who deployed it, and what changed against the version
before it. It is immutable: the record's key is ``<hash>@<at>``, unique per
version, so compaction of the catalog topic never drops one (a rollback to an
earlier folder is a new version with the same hash and a new time).

The value is JSON, UTF-8, keys sorted, no spaces (``docs/catalog.md`` shows
it whole)::

    {"at":..., "changes":{"added":[...],"changed":[...],"policies":false,"previous":"sha256:...",
     "removed":[...]}, "deployed":{"at":...,"by":"...","from":"...","host":"...","tool":"tactful 0.1.0"},
     "files":{"a.yaml":"..."}, "format":1, "hash":"sha256:..."}

The hash is the folder's identity, over its files only (not the time nor the
metadata): SHA-256 of each file, in name order, as its name, a newline, the
length of its UTF-8 text in bytes, a newline, then the text, with line
endings made ``\\n`` when read so that a checkout on Windows deploys the same
catalog. A reader checks it, so a record damaged on the way is refused.

``format`` is :data:`FORMAT`; a worker refuses a record of a later format
rather than misread it (:class:`~streams.errors.CatalogRefused`, reason
``format``). Nothing here touches Kafka: :mod:`streams.live.catalog.kafka`
moves these bytes.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streams.errors import CatalogRefused, TopologyError
from streams.topology import Catalog, load_folder

FORMAT = 1
HASH_PREFIX = "sha256:"
# A file name the loader would read from a folder: no path, no hidden file.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.yaml")


def read_folder(folder: Path) -> dict[str, str]:
    """The files a catalog is made of: every ``*.yaml`` of ``folder`` (what the loader reads)."""
    return {p.name: p.read_text(encoding="utf-8").replace("\r\n", "\n") for p in sorted(folder.glob("*.yaml"))}


def content_hash(files: Mapping[str, str]) -> str:
    """The catalog's identity: SHA-256 over its files in name order (module docstring)."""
    h = hashlib.sha256()
    for name in sorted(files):
        data = files[name].encode("utf-8")
        h.update(f"{name}\n{len(data)}\n".encode())
        h.update(data)
    return HASH_PREFIX + h.hexdigest()


def short(hash_: str) -> str:
    """The hash as people read it: its first 12 hex digits."""
    return hash_.removeprefix(HASH_PREFIX)[:12]


@dataclass(frozen=True)
class Changes:
    """What a version changes against the one before it (by topology name)."""

    previous: str | None = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    policies: bool = False

    def summary(self) -> str:
        if self.previous is None:
            return "first version"
        parts = [
            f"{what} {', '.join(names)}"
            for what, names in (("added", self.added), ("removed", self.removed), ("changed", self.changed))
            if names
        ]
        if self.policies:
            parts.append("policies changed")
        return "; ".join(parts) or "no topology changed"

    def to_obj(self) -> dict[str, Any]:
        return {
            "previous": self.previous,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
            "policies": self.policies,
        }


def diff(previous: Catalog | None, previous_hash: str | None, current: Catalog) -> Changes:
    """The changes from ``previous`` to ``current``, topologies matched by name (contract section 8)."""
    if previous is None:
        return Changes()
    old = {t.name: t for t in previous.topologies}
    new = {t.name: t for t in current.topologies}
    return Changes(
        previous=previous_hash,
        added=tuple(sorted(new.keys() - old.keys())),
        removed=tuple(sorted(old.keys() - new.keys())),
        changed=tuple(sorted(n for n in new.keys() & old.keys() if new[n] != old[n])),
        policies=previous.policies != current.policies,
    )


@dataclass(frozen=True)
class Deployed:
    """Who deployed a version, from where, when (wall clock, epoch ms) and with what."""

    by: str
    host: str
    at: int
    tool: str
    source: str  # the folder deployed, as given

    def to_obj(self) -> dict[str, Any]:
        return {"by": self.by, "host": self.host, "at": self.at, "tool": self.tool, "from": self.source}


@dataclass(frozen=True)
class CatalogRecord:
    """One catalog version as published: files, time, metadata. Its hash is over the files."""

    files: Mapping[str, str]
    at: int
    deployed: Deployed
    changes: Changes = field(default_factory=Changes)
    format: int = FORMAT

    @property
    def hash(self) -> str:
        return content_hash(self.files)

    @property
    def key(self) -> bytes:
        return f"{self.hash}@{self.at}".encode()

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "format": self.format,
                "hash": self.hash,
                "at": self.at,
                "files": dict(self.files),
                "deployed": self.deployed.to_obj(),
                "changes": self.changes.to_obj(),
            },
            option=orjson.OPT_SORT_KEYS,
        )

    @staticmethod
    def from_bytes(value: bytes | None) -> CatalogRecord:
        """Parse and check a record; :class:`CatalogRefused` if it is not one this tactful can use.

        The topologies are not loaded here (:func:`load_record` does): a record
        of the right shape with invalid topologies is refused as ``invalid``.
        """
        if value is None:
            raise CatalogRefused("corrupt", "the record has no value")
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise CatalogRefused("corrupt", f"not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise CatalogRefused("corrupt", "not a JSON object")
        fmt = obj.get("format")
        if type(fmt) is not int:
            raise CatalogRefused("corrupt", "no integer 'format'")
        if fmt > FORMAT:
            raise CatalogRefused("format", f"format {fmt} is newer than this tactful reads ({FORMAT}): upgrade it")
        try:
            files = obj["files"]
            at = obj["at"]
            dep = obj["deployed"]
            ch = obj["changes"]
            if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
                raise CatalogRefused("corrupt", "'files' is not an object of texts")
            bad = [n for n in files if not _FILE_NAME.fullmatch(n)]
            if bad:
                raise CatalogRefused("corrupt", f"file names that are not plain *.yaml names: {bad}")
            if type(at) is not int or at < 0:
                raise CatalogRefused("corrupt", "'at' is not a time in epoch milliseconds")
            record = CatalogRecord(
                files=files,
                at=at,
                deployed=Deployed(str(dep["by"]), str(dep["host"]), int(dep["at"]), str(dep["tool"]), str(dep["from"])),
                changes=Changes(
                    previous=ch["previous"],
                    added=tuple(ch["added"]),
                    removed=tuple(ch["removed"]),
                    changed=tuple(ch["changed"]),
                    policies=bool(ch["policies"]),
                ),
                format=fmt,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogRefused("corrupt", f"missing or malformed field: {exc}") from exc
        if obj.get("hash") != record.hash:
            raise CatalogRefused("corrupt", f"its hash {obj.get('hash')!r} is not its files' ({record.hash})")
        return record


def load_files(files: Mapping[str, str]) -> Catalog:
    """Load a catalog from its files' texts, as the loader loads a folder (through a temporary one)."""
    with tempfile.TemporaryDirectory(prefix="tactful-catalog-") as tmp:
        root = Path(tmp)
        for name, text in files.items():
            (root / name).write_text(text, encoding="utf-8")
        return load_folder(root)


@dataclass(frozen=True)
class Version:
    """A loaded catalog version: the record, its catalog, and where it arrived (its offset)."""

    record: CatalogRecord
    catalog: Catalog
    arrival: int

    @property
    def hash(self) -> str:
        return self.record.hash

    @property
    def at(self) -> int:
        return self.record.at

    @property
    def key(self) -> tuple[int, int]:
        """The order versions apply in: by time, equal times in arrival order (contract section 8)."""
        return (self.record.at, self.arrival)


def load_record(value: bytes | None, arrival: int) -> Version:
    """A record's bytes as a loaded :class:`Version`; :class:`CatalogRefused` if it cannot be used."""
    record = CatalogRecord.from_bytes(value)
    try:
        catalog = load_files(record.files)
    except TopologyError as exc:
        first = exc.problems[0] if exc.problems else "no detail"
        raise CatalogRefused("invalid", f"{len(exc.problems)} problem(s) in its topologies, first: {first}") from exc
    return Version(record, catalog, arrival)
