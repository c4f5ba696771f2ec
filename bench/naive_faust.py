"""The peer a user would write instead: a per-customer count, the way the Faust docs teach.

One agent, a ``Table`` with the default (JSON) serialisation, one table write
(and so one changelog record) per event, the same Avro decoding as tactful.

    python -m bench.naive_faust BOOTSTRAP TOPIC GROUP PARTITIONS
"""

from __future__ import annotations

import sys
from typing import Any


def main(argv: list[str]) -> None:
    import faust

    from streams.codec.avro import decode, local_registry

    bootstrap, topic_name, group, partitions = argv[0], argv[1], argv[2], int(argv[3])
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        topic_partitions=partitions,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        web_enabled=False,
        # Out of the repository root (Faust's default is ./<name>-data); removed after the run.
        datadir=f".run/bench/{group}-data",
    )
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    counts = app.Table("counts", default=int, partitions=partitions)
    resolve = local_registry().resolve

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for value in stream:
            event = decode(value, resolve)
            counts[event["customer_id"]] += 1

    # The level the Faust docs run workers at (`faust -A app worker -l info`); at
    # warning and above Faust turns on DEBUG for its spinner, a handicap the peer
    # should not carry (tactful turns that off: streams.live.faust.app.faust_worker).
    faust.Worker(app, loglevel="info").execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
