"""The Faust adapter: everything of tactful that knows Faust or aiokafka internals.

The live runtime (:mod:`streams.live.runtime`) imports no Faust; this folder
plugs it into a Faust worker:

- :mod:`~streams.live.faust.app`: the app factory, :func:`create_worker`
  (wires app, table, consumer, runtime, timers, views and the Redis mirror),
  the aiokafka producer accessor for the sink, and :func:`faust_worker`;
- :mod:`~streams.live.faust.consumer`: the batching consumer, which hands the
  input topic to the runtime a fetch at a time, none of it before Faust's seek
  to the committed offsets after a rebalance (its order pinned too);
- :mod:`~streams.live.faust.source`: the runtime's
  :class:`~streams.live.runtime.Source` port (acks, recovery, high watermarks);
- :mod:`~streams.live.faust.table`: the state table and its changelog writer;
- :mod:`~streams.live.faust.recovery`: the state table's recovery, applied in
  place from the consumer's fetches instead of through Faust's conductor;
- :mod:`~streams.live.faust.web`: the HTTP API (:mod:`streams.live.api`) as
  Faust views;
- :mod:`~streams.live.faust.mirror_log`: the Redis mirror's decision-topic
  consumer (plain aiokafka, public API only: nothing to pin).
- :mod:`~streams.live.faust.catalog_follower`: follows the catalog topic
  (plain aiokafka, public API only), handing new versions to the runtime;
- :mod:`~streams.live.faust.assignor`: Faust's partition assignor, taking the
  assignment a static group member (``TACTFUL_INSTANCE_ID``) gets back after a
  restart even when its web address changed.
- :mod:`~streams.live.faust.bootstrap`: the worker's clients wait at start
  for a broker that is away (``TACTFUL_START_TIMEOUT``);
- :mod:`~streams.live.faust.transactions`: exactly-once: one transactional
  producer per input partition (fencing its previous owner), and where a
  changelog partition's last committed record is, for recovery.

Private names relied on, all used in this folder only, each pinned by
``tests/live/faust/test_private_api.py`` so that an upgrade that changes one
fails there, loudly, instead of in production:

=====================================================  ==========  =====================================
name                                                   module      why
=====================================================  ==========  =====================================
``faust Consumer._drain_messages(fetcher)``            consumer    overridden: the loop, input batched
``faust aiokafka Consumer._new_consumer_thread()``     consumer    overridden: our consumer thread
``AIOKafkaConsumerThread._create_worker_consumer``     consumer    overridden: sets the fetch wait
``aiokafka AIOKafkaConsumer._fetch_max_wait_ms``       consumer    replaces Faust's hard-coded 1.5 s
``faust AIOKafkaConsumerThread._commit``               consumer    commits via ``commit``: metadata added
``mode Service._stopped``                              consumer    the loop's stop test (as Faust's)
``faust Consumer._read_offset``                        consumer    read offsets (as Faust's loop)
``faust Consumer._commit_every``, ``._n_acked``        consumer    commit cadence (as Faust's loop)
``faust Consumer._add_gap(tp, from, to)``              consumer    offset gaps (as Faust's loop)
``faust.transport.consumer.CONSUMER_FETCHING``         consumer    the diagnostic flag Faust sets
``faust Consumer.unacked`` (mutated), ``.ack``         consumer    a batch is tracked while processed
``ConsumerMessage.tracked``, ``.generation_id``        consumer    stale input (a message's generation)
``faust Consumer._wait_next_records(timeout)``         consumer    getmany inlined: the fetch
``faust Consumer._buffered_partitions``                consumer    getmany inlined: partitions it takes
``faust Consumer._to_message(tp, record)``             consumer    other topics' messages, as Faust's
``faust Consumer._acked``, ``._acked_index``           consumer    ack_all: Faust's ack, in one pass
``faust Consumer._committed_offset``                   consumer    ack_all: acks below it are dropped
``faust Consumer._unacked_messages``, ``ack_lock``     consumer    ack_all; one marker a batch in it
``faust Consumer._waiting_for_ack``                    consumer    ack_all wakes wait_empty, once
``faust aiokafka Producer._ensure_producer()``         app         the aiokafka producer, for the sink
``Topic.__aiter__()``                                  app         registers the topic with the conductor
``app.tables.recovery.completed``                      source      not in Faust's typed interface
``faust memory Store._key_partition``                  table       keys of revoked partitions are dropped
``faust memory Store.data`` (its dict)                 table       the runtime's state map, no wrapper
``faust Recovery.active_tps``, ``.active_highwaters``  recovery    which changelog records to restore
``faust Recovery.active_offsets``, ``.buffers``        recovery    restored in place, as Faust would
``Recovery._active_events_received_at``                recovery    Faust's progress log, kept true
``faust Recovery._last_flush_at``                      recovery    Faust's progress log, kept true
``faust Worker.spinner``                               app         set to None: keeps the log level
``PartitionAssignor._compress``, ``._decompress``      assignor    the assignment's metadata (zlib)
``PartitionAssignor.on_assignment`` asserts the url    assignor    overridden: a restart's new address
``aiokafka AIOKafkaConsumer._isolation_level``         consumer    set to read_committed (both modes)
``faust aiokafka Producer._new_producer(tid)``         app         per-partition transactional producers
``faust Recovery._build_highwaters`` asks highwaters   consumer    overridden highwaters: changelog ends
``aiokafka AIOKafkaProducer._txn_manager``             transact.   a fence met in the background
``aiokafka AIOKafkaConsumer._client`` (its bootstrap)  consumer    waits for a broker away at start
=====================================================  ==========  =====================================

The sink (:mod:`streams.live.sink`) uses only aiokafka's public producer API
(``create_batch``, ``send_batch``, ``partitions_for``; with exactly-once,
``begin_transaction``, ``send_offsets_to_transaction``, ``commit_transaction``
and ``abort_transaction``) on the producers the adapter hands it.
"""

from streams.live.faust.app import Worker, create_worker, faust_worker

__all__ = ["Worker", "create_worker", "faust_worker"]
