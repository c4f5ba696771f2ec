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
# A line may also carry "\r\n"; read that much in one go, anything longer is
# too large and is skipped in chunks so one hostile line never fills memory.
_READ_LIMIT = MAX_RECORD_BYTES + 2
_SKIP_CHUNK = 1 << 16

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


def _read(fo: BinaryIO) -> Iterator[JsonlItem]:
    lineno = 0
    while True:
        line = fo.readline(_READ_LIMIT)
        if not line:
            return
        lineno += 1
        if not line.endswith(b"\n") and len(line) == _READ_LIMIT:
            _skip_rest_of_line(fo)
            yield lineno, _too_large()
            continue
        if lineno == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        item = _decode_line(line)
        if item is not None:
            yield lineno, item


def _skip_rest_of_line(fo: BinaryIO) -> None:
    while True:
        chunk = fo.readline(_SKIP_CHUNK)
        if not chunk or chunk.endswith(b"\n"):
            return


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
