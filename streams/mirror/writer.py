"""An in-memory writer: :class:`SuppressionMirror` queues, batches and retries writes until each lands.

The worker does not use it any more: its mirror consumes the decision topics
itself (:mod:`streams.mirror.consumer`), so a kill cannot lose what was
queued. It stays for code that holds decisions of its own to mirror.

Writes apply in submission order whatever fails in between: a failed batch
stays at the head of the queue and is sent again after a :class:`Backoff`.
The deletion of an erased customer's keys (:meth:`SuppressionMirror.forget`)
takes its place in that order, as a batch of its own.
Its Prometheus metrics are :class:`MirrorMetrics`, one set per registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from weakref import WeakKeyDictionary

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from redis.exceptions import RedisClusterException, RedisError

from streams.decisions import Decision
from streams.errors import ConfigError, MirrorUnavailable
from streams.mirror.forget import ForgetCustomer, forget_customer
from streams.mirror.keys import (
    DEFAULT_PREFIX,
    MirrorWrite,
    RedisClient,
    apply_script,
    apply_writes,
    check_prefix,
    mirror_writes,
    wall_clock_ms,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MirrorMetrics:
    """The mirror's Prometheus metrics (names in docs/metrics.md)."""

    writes: Counter
    errors: Counter
    lag: Gauge
    rebuilds: Counter


_METRICS: WeakKeyDictionary[CollectorRegistry, MirrorMetrics] = WeakKeyDictionary()


def mirror_metrics(registry: CollectorRegistry | None = None) -> MirrorMetrics:
    """The mirror metrics on ``registry`` (default: the global one), created on first use.

    Created once per registry, so a second mirror in one process shares the
    counters instead of failing on duplicate names.
    """
    target = REGISTRY if registry is None else registry
    metrics = _METRICS.get(target)
    if metrics is None:
        metrics = MirrorMetrics(
            writes=Counter("tactful_redis_mirror_writes", "Suppression mirror writes landed.", ["op"], registry=target),
            errors=Counter(
                "tactful_redis_mirror_errors",
                "Failed mirror write attempts (one per failed batch; each is retried).",
                registry=target,
            ),
            lag=Gauge(
                "tactful_redis_mirror_lag_seconds",
                "Age of the oldest mirror write not yet landed (0 when caught up).",
                registry=target,
            ),
            rebuilds=Counter(
                "tactful_redis_mirror_rebuilds",
                "Times this process started replaying decision-topic partitions from their beginning "
                "into Redis (the mirror's generation was gone or changed, or no offsets were committed).",
                registry=target,
            ),
        )
        _METRICS[target] = metrics
    return metrics


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between retries: ``initial_s``, times ``factor`` after each failure, at most ``max_s``."""

    initial_s: float = 0.1
    max_s: float = 5.0
    factor: float = 2.0

    def after(self, delay: float) -> float:
        """The wait that follows a failed wait of ``delay``."""
        return min(delay * self.factor, self.max_s)


@dataclass(frozen=True, slots=True)
class _Pending:
    write: MirrorWrite | ForgetCustomer
    since: float  # monotonic seconds when submitted


class SuppressionMirror:
    """Mirrors emitted suppressions and releases to Redis, in order, never dropping one.

    :meth:`submit` only queues; :meth:`run` (or :meth:`start`) sends the queue
    in batches of ``batch_size``, one pipeline each. A batch that fails stays
    at the head of the queue and is sent again after a backoff, until it
    lands, so writes apply in submission order whatever fails in between.
    While a batch keeps failing the mirror is :attr:`degraded`.

    All methods must be called from the event loop that runs :meth:`run`.
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], int] = wall_clock_ms,
        backoff: Backoff | None = None,
        batch_size: int = 256,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.client = client
        self.prefix = check_prefix(prefix)
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._batch_size = batch_size
        self._script = apply_script(client)
        self._metrics = mirror_metrics(registry)
        self._metrics.lag.set_function(lambda: self.lag_seconds)
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()  # work arrived, or stop
        self._stopped = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._degraded = False
        self._running = False
        self._last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def degraded(self) -> bool:
        """True from a failed batch until the next batch lands."""
        return self._degraded

    @property
    def pending(self) -> int:
        """Writes queued and not landed yet."""
        return len(self._queue)

    @property
    def lag_seconds(self) -> float:
        """Age of the oldest write not landed yet; 0 when caught up."""
        if not self._queue:
            return 0.0
        return max(0.0, time.monotonic() - self._queue[0].since)

    def submit(self, decisions: Iterable[Decision]) -> int:
        """Queue the mirror writes of ``decisions`` in order; return how many. Never blocks.

        Suppressions already expired by the clock are left out: there is
        nothing to mirror. Writes are kept in memory until they land, so a
        long Redis outage grows the queue (see :attr:`pending`).
        """
        since = time.monotonic()
        added = 0
        for write in mirror_writes(decisions, self._clock()):
            self._queue.append(_Pending(write, since))
            added += 1
        if added:
            self._drained.clear()
            self._wakeup.set()
        return added

    def forget(self, customer_id: str) -> None:
        """Queue the deletion of every key of ``customer_id`` (an erased customer), after what is queued."""
        self._queue.append(_Pending(ForgetCustomer(customer_id), time.monotonic()))
        self._drained.clear()
        self._wakeup.set()

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` as a task of the running loop; :meth:`stop` ends it."""
        if self._task is not None:
            raise RuntimeError("the suppression mirror is already started")
        self._task = asyncio.get_running_loop().create_task(self.run(), name="tactful-redis-mirror")
        return self._task

    async def stop(self) -> None:
        """End :meth:`run` after the batch in flight. Writes not landed stay in :attr:`pending`.

        Call :meth:`flush` first to wait for them.
        """
        self._stopped.set()
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def flush(self, timeout: float) -> None:
        """Wait until every submitted write has landed; :class:`MirrorUnavailable` after ``timeout`` s."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError as exc:
            state = f"last error: {self._last_error}" if self._degraded else "Redis answers"
            if not self._running:
                state = "the mirror is not running (start() it)"
            raise MirrorUnavailable(
                f"Redis mirror: {self.pending} writes still pending after {timeout:g}s ({state})"
            ) from exc

    async def run(self) -> None:
        """Send queued writes until :meth:`stop`: batch by batch, each retried until it lands."""
        if self._running:
            # Two loops would both send the head batch and pop it twice.
            raise RuntimeError("the suppression mirror is already running")
        self._running = True
        delay = self._backoff.initial_s
        try:
            while not self._stopped.is_set():
                if not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                head = self._queue[0].write
                batch: Sequence[MirrorWrite | ForgetCustomer]
                try:
                    if isinstance(head, ForgetCustomer):
                        # Alone: it needs SCAN's answers, which a pipeline cannot give.
                        batch = [head]
                        await forget_customer(self.client, self.prefix, head.customer_id)
                    else:
                        writes: list[MirrorWrite] = []
                        for pending in islice(self._queue, self._batch_size):
                            if not isinstance(pending.write, MirrorWrite):
                                break  # a deletion: it goes after these, on its own
                            writes.append(pending.write)
                        batch = writes
                        await apply_writes(self.client, self._script, self.prefix, writes, self._clock())
                except (RedisError, RedisClusterException, OSError) as exc:
                    self._failed(exc, len(batch), delay)
                    await self._pause(delay)
                    delay = self._backoff.after(delay)
                else:
                    self._landed(batch)
                    delay = self._backoff.initial_s
        finally:
            self._running = False

    def _landed(self, batch: Sequence[MirrorWrite | ForgetCustomer]) -> None:
        for write in batch:
            self._queue.popleft()
            self._metrics.writes.labels(op=write.op).inc()
        if self._degraded:
            log.warning("Redis mirror recovered: %d writes landed, %d pending", len(batch), self.pending)
            self._degraded = False
            self._last_error = None
        if not self._queue:
            self._drained.set()

    def _failed(self, exc: BaseException, size: int, delay: float) -> None:
        self._metrics.errors.inc()
        self._last_error = f"{type(exc).__name__}: {exc}"
        if not self._degraded:
            # Once per outage: each retry is logged at debug only, to keep the log readable.
            log.warning("Redis mirror degraded (%s); %d writes pending, retrying", self._last_error, self.pending)
            self._degraded = True
        log.debug("Redis mirror batch of %d failed (%s); retrying in %.2fs", size, self._last_error, delay)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)
