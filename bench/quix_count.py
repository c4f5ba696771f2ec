"""The same per-customer count in Quix Streams, for the side-by-side benchmark.

Runs in its own virtualenv (``.venv-quix``, made by ``make bench``): Quix
Streams is a benchmark peer, not a dependency. It imports nothing of tactful;
it decodes the Confluent wire format with fastavro and the project's schema,
the same work tactful's decoder does.

    .venv-quix/bin/python bench/quix_count.py BOOTSTRAP TOPIC GROUP STATE_DIR
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> None:
    import fastavro
    from quixstreams import Application

    bootstrap, topic_name, group, state_dir = argv
    schema_file = Path(__file__).resolve().parents[1] / "avro" / "touchpoint.avsc"
    schema = fastavro.parse_schema(json.loads(schema_file.read_text()))

    def decode(value: bytes) -> dict[str, Any]:
        buf = io.BytesIO(value)
        buf.seek(5)  # magic byte and schema id
        record = fastavro.schemaless_reader(buf, schema)
        assert isinstance(record, dict)
        return record

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        commit_interval=1.0,
        state_dir=state_dir,
        loglevel="WARNING",
    )
    topic = app.topic(topic_name, key_deserializer="str", value_deserializer="bytes")
    sdf = app.dataframe(topic)

    def count(value: bytes, state: Any) -> None:
        decode(value)
        state.set("n", state.get("n", 0) + 1)

    sdf.update(count, stateful=True)
    app.run()


if __name__ == "__main__":
    main(sys.argv[1:])
