"""Kafka and Redis clients built from :class:`~streams.settings.Settings`, in one place.

Every Kafka (librdkafka) and Redis client tactful makes outside Faust comes
from here, so the connection settings (password, TLS, SASL) are honoured the
same way everywhere and every client gives up within a bound:

- :func:`redis_client`: an asyncio Redis client for the mirror's Redis, a
  ``redis.asyncio.cluster.RedisCluster`` when ``TACTFUL_REDIS_CLUSTER`` is
  true. TLS comes with a ``rediss://`` URL, verified against
  ``TACTFUL_REDIS_CA_FILE`` when set; an ACL user from
  ``TACTFUL_REDIS_USERNAME`` and its password from ``TACTFUL_REDIS_PASSWORD``
  (or either in the URL, not both). Timeouts are short and redis-py does not
  retry: callers that mean to retry (the mirror) do it themselves, and the
  command line should fail in seconds, not hide an outage.
- :func:`kafka_options`, :func:`kafka_admin`, :func:`kafka_consumer` and
  :func:`kafka_producer`: librdkafka options from
  :meth:`~streams.settings.KafkaConnection.librdkafka`. librdkafka prints every
  failed connection attempt to standard error on its own (hundreds of lines a
  minute while a broker is down); here its log lines go to the Python logger
  ``streams.kafka`` at DEBUG instead, so they show only when asked for. They
  reach Python when the client is polled (confluent-kafka's rule). A refused
  login (SASL) or TLS handshake is not retried for ever like a broker that is
  down: the error callback raises :class:`~streams.errors.InfraError` with
  librdkafka's reason from the call that polled it.
- :func:`wait_for_kafka`: wait for the brokers to answer, with backoff, one
  warning per failed attempt saying what it waits for, and
  :class:`~streams.errors.InfraError` after a timeout (for the worker:
  ``TACTFUL_START_TIMEOUT``).

Nothing connects when a client is built; the first request does.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from streams.errors import ConfigError, InfraError
from streams.settings import KafkaConnection, RedisSettings

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin._metadata import ClusterMetadata

    from streams.mirror.keys import RedisClient

log = logging.getLogger(__name__)
KAFKA_LOG = logging.getLogger("streams.kafka")

REDIS_TIMEOUT_S = 2.0
# librdkafka waits 30 s for a TCP connection to a silent address by default.
KAFKA_CONNECT_TIMEOUT_MS = 10_000


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redis_client(settings: RedisSettings, *, timeout_s: float = REDIS_TIMEOUT_S, retries: int = 0) -> RedisClient:
    """An asyncio client for ``settings.url`` (which must be set); nothing connects until used.

    With ``settings.cluster`` a ``RedisCluster``: the URL names one node, the
    client learns the others (and the slots they serve) on first use.
    """
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    if not settings.url:
        raise ConfigError("no Redis: set TACTFUL_REDIS_URL")
    url = urlsplit(settings.url)
    password = settings.password.get_secret_value() if settings.password else None
    # redis-py lets a user or password in the URL win over the keyword silently; say so instead.
    if password is not None and url.password is not None:
        raise ConfigError("TACTFUL_REDIS_URL holds a password and TACTFUL_REDIS_PASSWORD is set: set only one")
    if settings.username is not None and url.username:
        raise ConfigError("TACTFUL_REDIS_URL holds a user name and TACTFUL_REDIS_USERNAME is set: set only one")
    options: dict[str, Any] = {
        "username": settings.username,
        "password": password,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.1), retries),
    }
    if settings.ca_file is not None:
        if url.scheme != "rediss":
            raise ConfigError(
                f"TACTFUL_REDIS_CA_FILE is set but TACTFUL_REDIS_URL is {url.scheme}://, not rediss:// (TLS)"
            )
        if not settings.ca_file.is_file():
            raise ConfigError(f"TACTFUL_REDIS_CA_FILE: no such file: {settings.ca_file}")
        options["ssl_ca_certs"] = str(settings.ca_file)
    if settings.cluster:
        if url.scheme not in ("redis", "rediss"):
            raise ConfigError(f"TACTFUL_REDIS_CLUSTER needs a redis:// or rediss:// URL, not {url.scheme}://")
        if url.path.strip("/") not in ("", "0"):
            raise ConfigError(f"a Redis Cluster has database 0 only; TACTFUL_REDIS_URL names {url.path.strip('/')}")
        return RedisCluster.from_url(settings.url, **options)
    return Redis.from_url(settings.url, **options)


class _LibrdkafkaLog:
    """What confluent-kafka's ``logger`` option calls for each librdkafka log line.

    Every line goes to ``streams.kafka`` at DEBUG, whatever librdkafka thought
    of it: a refused connection is logged at ERROR, once per attempt, and the
    failures that matter reach the caller as exceptions anyway.
    """

    def log(self, level: int, msg: str, *args: object) -> None:
        if KAFKA_LOG.isEnabledFor(logging.DEBUG):
            KAFKA_LOG.debug("librdkafka %s: " + msg, logging.getLevelName(level), *args)


class _RefusedConnection:
    """What confluent-kafka's ``error_cb`` option calls: turns a refused login or TLS handshake into an error.

    librdkafka treats neither as fatal: it retries the broker forever, and each
    request only ends in "Broker transport failure" at its timeout, so a wrong
    password would look like a broker that is down until the caller's timeout.
    Raised here, :class:`~streams.errors.InfraError` leaves the poll (or
    ``list_topics``, ``consume``, ``flush``) that served the callback, at the
    first refusal and with librdkafka's own reason. Other errors (a broker that
    is down) stay retried, as before.
    """

    def __init__(self, kafka: KafkaConnection) -> None:
        self.kafka = kafka

    def __call__(self, error: Any) -> None:
        from confluent_kafka import KafkaError

        code = error.code()
        if code not in (KafkaError._AUTHENTICATION, KafkaError._SSL):
            return
        # "sasl_ssl://host:port/bootstrap: <reason> (after 310ms in state AUTH_REQ)" -> "<reason>"
        reason = str(error.str()).split(": ", 1)[-1].split(" (after ", 1)[0]
        if code == KafkaError._AUTHENTICATION:
            hint = "TACTFUL_SASL_MECHANISM, TACTFUL_SASL_USERNAME and TACTFUL_SASL_PASSWORD"
            what = "refused the login"
        else:
            hint = "TACTFUL_SSL_CAFILE"
            what = "failed the TLS handshake"
        raise InfraError(f"Kafka at {self.kafka.bootstrap_servers} {what}: {reason} (check {hint})")


def kafka_options(kafka: KafkaConnection, **extra: Any) -> dict[str, Any]:
    """librdkafka options for ``kafka``, its log lines routed to Python logging, with ``extra`` on top.

    A refused login or TLS handshake raises :class:`InfraError` from the client
    call that polled it (see :class:`_RefusedConnection`).
    """
    return {
        **kafka.librdkafka(),
        "socket.connection.setup.timeout.ms": KAFKA_CONNECT_TIMEOUT_MS,
        "logger": _LibrdkafkaLog(),
        "error_cb": _RefusedConnection(kafka),
        **extra,
    }


def kafka_admin(kafka: KafkaConnection, **extra: Any) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    return AdminClient(kafka_options(kafka, **extra))


def kafka_consumer(kafka: KafkaConnection, **extra: Any) -> Consumer:
    """A consumer; ``extra`` must name at least ``group.id``."""
    from confluent_kafka import Consumer

    return Consumer(kafka_options(kafka, **extra))


def kafka_producer(kafka: KafkaConnection, **extra: Any) -> Producer:
    from confluent_kafka import Producer

    return Producer(kafka_options(kafka, **extra))


def kafka_reason(exc: BaseException) -> str:
    """The text of a ``KafkaException`` (its ``KafkaError``), without the wrapper's repr."""
    first: object = exc.args[0] if exc.args else exc
    text = getattr(first, "str", None)
    return str(text()) if callable(text) else str(first)


def close_client(client: Any) -> None:
    """Destroy a confluent-kafka client now, ignoring what its last callbacks raise
    (a refused login raises from ``error_cb``; see :class:`_RefusedConnection`)."""
    close = getattr(client, "close", None)
    with contextlib.suppress(Exception):
        if close is not None:
            close()


def wait_for_kafka(
    client: AdminClient | Producer,
    kafka: KafkaConnection,
    timeout_s: float,
    *,
    attempt_s: float = 5.0,
    setting: str = "TACTFUL_START_TIMEOUT",
) -> ClusterMetadata:
    """The cluster's metadata once the brokers answer; :class:`InfraError` after ``timeout_s``.

    librdkafka retries connections on its own; each attempt here is a metadata
    request (of 1 s, doubling up to ``attempt_s``), then a pause (of 0.5 s,
    doubling up to 5 s).
    Every failed attempt logs one warning naming the brokers; ``setting`` (named
    in the final error) is what to raise to wait longer. A refused login or TLS
    handshake is not waited for: :class:`InfraError` at the first attempt. Not for a consumer: the
    poll that serves librdkafka's log lines would also take its messages.
    """
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_s
    pause, wait = 0.5, 1.0
    attempt = 0
    while True:
        attempt += 1
        left = deadline - time.monotonic()
        try:
            meta = client.list_topics(timeout=max(min(wait, left), 0.1))
        except KafkaException as exc:
            # Serve the callbacks first: a refused login raises here, before a misleading "waiting" line.
            client.poll(0)
            reason = kafka_reason(exc)
            left = deadline - time.monotonic()
            if left < 0.5:  # too little left for another attempt to mean anything
                raise InfraError(
                    f"Kafka at {kafka.bootstrap_servers} did not answer within {timeout_s:g}s "
                    f"(set by {setting}): {reason}"
                ) from exc
            log.warning(
                "waiting for Kafka at %s (attempt %d: %s); retrying in %.1fs, giving up in %.0fs",
                kafka.bootstrap_servers,
                attempt,
                reason,
                min(pause, left),
                left,
            )
            time.sleep(min(pause, left))
            pause, wait = min(pause * 2, 5.0), min(wait * 2, attempt_s)
        else:
            return meta
        finally:
            client.poll(0)  # hands librdkafka's queued log lines to Python logging
