"""JSON Lines: line numbers, blank lines, bad lines never raise, size limit, errors."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.codec import MAX_RECORD_BYTES
from streams.codec.jsonl import read_jsonl, write_jsonl
from streams.errors import EventsFileError, MalformedRecord


def lines_of(data: bytes, tmp_path: Path) -> list[tuple[int, object]]:
    path = tmp_path / "events.jsonl"
    path.write_bytes(data)
    return list(read_jsonl(path))


def reasons(items: list[tuple[int, object]]) -> list[tuple[int, str]]:
    return [(n, v.reason) for n, v in items if isinstance(v, MalformedRecord)]


def test_values_with_line_numbers_and_blank_lines_counted(tmp_path: Path) -> None:
    data = b'{"a": 1}\n\n   \n\t\r\n{"b": 2}\r\n[1, 2]\n"text"\n{"c": 3}'
    assert lines_of(data, tmp_path) == [
        (1, {"a": 1}),
        (5, {"b": 2}),
        (6, [1, 2]),  # not an object: validate_event judges that, not the reader
        (7, "text"),
        (8, {"c": 3}),  # last line without a newline
    ]


def test_empty_file(tmp_path: Path) -> None:
    assert lines_of(b"", tmp_path) == []
    assert lines_of(b"\n\n", tmp_path) == []


def test_bad_lines_are_reported_not_raised(tmp_path: Path) -> None:
    data = b'{"a": 1}\nnot json\n{"a": \n\xff\xfe{}\n{"a": NaN}\n{"b": 2}\n'
    items = lines_of(data, tmp_path)
    assert reasons(items) == [
        (2, "malformed"),
        (3, "malformed"),
        (4, "malformed"),
        (5, "malformed"),
    ]
    assert items[0] == (1, {"a": 1})
    assert items[-1] == (6, {"b": 2})
    bad = items[1][1]
    assert isinstance(bad, MalformedRecord) and bad.detail.startswith("not JSON")


def test_too_deep_nesting_is_malformed(tmp_path: Path) -> None:
    items = lines_of(b"[" * 5000 + b"]" * 5000 + b"\n{}\n", tmp_path)
    assert reasons(items) == [(1, "malformed")]
    assert items[1] == (2, {})


def test_byte_order_mark_on_first_line(tmp_path: Path) -> None:
    assert lines_of(b'\xef\xbb\xbf{"a": 1}\n', tmp_path) == [(1, {"a": 1})]
    # Anywhere else it is not JSON.
    assert reasons(lines_of(b'{}\n\xef\xbb\xbf{"a": 1}\n', tmp_path)) == [(2, "malformed")]


def _line_of(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    return b'{"p": "' + b"x" * (size - 9) + b'"}'


def test_size_limit_is_exact(tmp_path: Path) -> None:
    at_limit = _line_of(MAX_RECORD_BYTES)
    over = _line_of(MAX_RECORD_BYTES + 1)
    assert len(at_limit) == MAX_RECORD_BYTES
    data = at_limit + b"\n" + over + b"\n" + at_limit + b"\r\n" + over + b"\r\n" + b"{}\n" + over
    items = lines_of(data, tmp_path)
    assert [n for n, _ in items] == [1, 2, 3, 4, 5, 6]
    assert reasons(items) == [(2, "too_large"), (4, "too_large"), (6, "too_large")]
    assert items[0][1] == {"p": "x" * (MAX_RECORD_BYTES - 9)}
    assert items[4] == (5, {})


def test_huge_line_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as fo:
        fo.write(b'{"a": 1}\n{"p": "')
        for _ in range(160):
            fo.write(b"x" * 65_536)  # 10 MiB in one line
        fo.write(b'"}\n{"b": 2}\n')
    tracemalloc.start()
    try:
        items = list(read_jsonl(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert items[0] == (1, {"a": 1})
    assert reasons(items) == [(2, "too_large")]
    assert items[2] == (3, {"b": 2})
    assert peak < 2_000_000


def test_reads_an_open_binary_file() -> None:
    assert list(read_jsonl(io.BytesIO(b'{"a": 1}\n\n{"b": 2}\n'))) == [(1, {"a": 1}), (3, {"b": 2})]


def test_is_lazy(tmp_path: Path) -> None:
    reader = read_jsonl(tmp_path / "missing.jsonl")  # nothing happens yet
    assert isinstance(reader, Iterator)
    with pytest.raises(EventsFileError) as info:
        next(reader)
    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert "missing.jsonl" in str(info.value)


def test_directory_is_an_events_file_error(tmp_path: Path) -> None:
    with pytest.raises(EventsFileError) as info:
        list(read_jsonl(tmp_path))
    assert isinstance(info.value.__cause__, OSError)


def test_read_error_midway_is_an_events_file_error() -> None:
    class Failing(io.BytesIO):
        """The first read succeeds; the disk is gone by the next."""

        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 0:
                raise OSError("disk gone")
            return super().read(size)

    reader = read_jsonl(Failing(b"{}\n{}\n"))
    assert next(reader) == (1, {})
    assert next(reader) == (2, {})
    with pytest.raises(EventsFileError, match="disk gone"):
        next(reader)


def test_write_jsonl_round_trip(tmp_path: Path) -> None:
    values: list[object] = [{"a": 1, "t": "2026-05-01T10:00:00.000Z"}, [1, "x"], {"ü": "ß"}]
    path = tmp_path / "out.jsonl"
    assert write_jsonl(path, iter(values)) == 3
    assert path.read_bytes().count(b"\n") == 3
    assert [v for _, v in read_jsonl(path)] == values


def test_write_jsonl_to_binary_and_text_streams() -> None:
    binary = io.BytesIO()
    text = io.StringIO()
    assert write_jsonl(binary, [{"a": 1}, {"b": "é"}]) == 2
    assert write_jsonl(text, [{"a": 1}, {"b": "é"}]) == 2
    assert binary.getvalue() == b'{"a":1}\n{"b":"\xc3\xa9"}\n'
    assert text.getvalue() == '{"a":1}\n{"b":"é"}\n'


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(
    lines=st.lists(
        st.one_of(
            st.just(b""),
            st.just(b"   "),
            st.just(b"{oops"),
            st.just(b"\r"),
            st.builds(lambda n: b'{"k": "' + b"x" * n + b'"}', st.integers(0, 40)),
        ),
        max_size=30,
    ),
    crlf=st.booleans(),
    chunk=st.integers(1, 64),
    trailing_newline=st.booleans(),
)
def test_chunked_reading_matches_line_by_line_reading(
    monkeypatch: pytest.MonkeyPatch, lines: list[bytes], crlf: bool, chunk: int, trailing_newline: bool
) -> None:
    """Chunk boundaries anywhere (inside a line, between \\r and \\n) change nothing."""
    import streams.codec.jsonl as jsonl

    monkeypatch.setattr(jsonl, "MAX_RECORD_BYTES", 30)  # some lines are too large
    monkeypatch.setattr(jsonl, "_CHUNK", chunk)
    sep = b"\r\n" if crlf else b"\n"
    data = sep.join(lines) + (sep if trailing_newline and lines else b"")

    def reference() -> list[tuple[int, object]]:
        out: list[tuple[int, object]] = []
        for n, raw in enumerate(data.split(b"\n") if data else [], start=1):
            body = raw[:-1] if raw.endswith(b"\r") else raw
            if n == len(data.split(b"\n")) and not raw:
                break  # the empty piece after a final newline is no line
            if len(body) > 30:
                out.append((n, "too_large"))
            elif body.strip():
                try:
                    out.append((n, orjson.loads(body)))
                except orjson.JSONDecodeError:
                    out.append((n, "malformed"))
        return out

    got = [(n, v.reason if isinstance(v, MalformedRecord) else v) for n, v in jsonl.read_jsonl(io.BytesIO(data))]
    assert got == reference()
