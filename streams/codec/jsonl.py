"""JSON Lines: one JSON value per line, read without ever failing on a bad line."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from typing import IO, BinaryIO, cast

import orjson

from streams.codec import MAX_RECORD_BYTES
from streams.errors import EventsFileError, MalformedRecord

_BOM = b"\xef\xbb\xbf"

# (1-based line number, the decoded JSON value or the MalformedRecord for that
# line); ``object`` already covers MalformedRecord, callers test isinstance.
JsonlItem = tuple[int, object]


def read_jsonl(source: str | os.PathLike[str] | BinaryIO) -> Iterator[JsonlItem]:
    """Yield ``(line number, value)`` for every non-blank line of ``source``.

    ``value`` is the decoded JSON value (any JSON value; judging it is
    :func:`~streams.events.validate_event`'s job), or a :class:`MalformedRecord`
    when the line is not JSON (``malformed``) or is longer than
    :data:`MAX_RECORD_BYTES` (``too_large``). A bad line never raises. Blank
    and whitespace-only lines are skipped but still counted. A UTF-8 byte-order
    mark on the first line is ignored.

    Lazy: a path is opened when iteration starts. Raises
    :class:`EventsFileError` (cause chained) when it cannot be opened or read.
    """
    name = "<stream>" if not isinstance(source, (str, os.PathLike)) else os.fspath(source)
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as fo:
                yield from _read(fo)
        else:
            yield from _read(source)
    except OSError as exc:
        raise EventsFileError(f"cannot read {name}: {exc}") from exc


_CHUNK = 1 << 18


def _read(fo: BinaryIO) -> Iterator[JsonlItem]:
    """Read in 256 KiB chunks and split in C: per-line ``readline`` calls cost as much as
    decoding. A line longer than the limit is dropped as soon as it passes the limit,
    so one hostile line never holds more than a chunk or two in memory."""
    lineno = 0
    carry = b""
    oversized = False  # inside a line already known to be too large
    loads = orjson.loads
    limit = MAX_RECORD_BYTES
    first = True
    while True:
        chunk = fo.read(_CHUNK)
        if not chunk:
            break
        if first:
            first = False
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if lines:
            head = lines[0]
            if oversized:
                lineno += 1
                yield lineno, _too_large()
                lines = lines[1:]
                oversized = False
            else:
                lines[0] = carry + head
            carry = b""
        for line in lines:
            lineno += 1
            body = line[:-1] if line[-1:] == b"\r" else line
            if len(body) > limit:
                yield lineno, _too_large()
                continue
            try:
                yield lineno, loads(body)
            except orjson.JSONDecodeError as exc:
                if body.strip():
                    yield lineno, MalformedRecord("malformed", f"not JSON: {exc}")
        if oversized:
            continue
        carry += tail
        if len(carry) > limit + 1:
            oversized, carry = True, b""
    if oversized:
        yield lineno + 1, _too_large()
    elif carry:
        item = _decode_line(carry)
        if item is not None:
            yield lineno + 1, item


def _decode_line(line: bytes) -> object | None:
    """The line's value, a :class:`MalformedRecord`, or ``None`` for a blank line."""
    body = line.rstrip(b"\r\n")
    if len(body) > MAX_RECORD_BYTES:
        return _too_large()
    if not body.strip():
        return None
    try:
        value: object = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return MalformedRecord("malformed", f"not JSON: {exc}")
    return value


def _too_large() -> MalformedRecord:
    return MalformedRecord("too_large", f"line is longer than {MAX_RECORD_BYTES} bytes")


def write_jsonl(target: str | os.PathLike[str] | IO[bytes] | IO[str], values: Iterable[object]) -> int:
    """Write each value as one JSON line to a path or an open file; return how many.

    A text stream (such as ``sys.stdout``) gets text, anything else bytes.
    Values must be JSON-serialisable (``orjson.JSONEncodeError`` otherwise).
    """
    if isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as fo:
            return _write(fo, values)
    if isinstance(target, io.TextIOBase):
        return _write_text(cast(IO[str], target), values)
    return _write(cast(IO[bytes], target), values)


def _write(fo: IO[bytes], values: Iterable[object]) -> int:
    count = 0
    dumps = orjson.dumps
    option = orjson.OPT_APPEND_NEWLINE
    for value in values:
        fo.write(dumps(value, option=option))
        count += 1
    return count


def _write_text(fo: IO[str], values: Iterable[object]) -> int:
    count = 0
    for value in values:
        fo.write(orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE).decode("utf-8"))
        count += 1
    return count
