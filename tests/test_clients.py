"""Clients from Settings: what each one is given, and how waiting for Kafka gives up."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from redis.asyncio import Redis

from streams.clients import kafka_admin, kafka_options, redacted, redis_client, wait_for_kafka
from streams.errors import ConfigError, InfraError
from streams.settings import KafkaConnection, RedisSettings, Settings


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://user:pw@cache.example:6380", "rediss://user:***@cache.example:6380"),
    ],
)
def test_redacted_hides_only_the_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_redis_client_takes_the_password_setting_and_short_timeouts() -> None:
    settings = Settings.from_flat({"redis_url": "redis://127.0.0.1:1/2", "redis_password": "s3cret"}).redis
    client = redis_client(settings, timeout_s=1.5)
    assert isinstance(client, Redis)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["password"], kwargs["db"], kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (
        "s3cret",
        2,
        1.5,
        1.5,
    )


def test_redis_client_speaks_tls_for_a_rediss_url() -> None:
    from redis.asyncio.connection import SSLConnection

    client = redis_client(RedisSettings(url="rediss://127.0.0.1:1/0"))
    assert isinstance(client, Redis)
    assert client.connection_pool.connection_class is SSLConnection


def test_redis_client_logs_in_as_an_acl_user_over_tls_with_a_ca_file(tmp_path: Path) -> None:
    from redis.asyncio.connection import SSLConnection

    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a connection is made")
    settings = Settings.from_flat(
        {
            "redis_url": "rediss://127.0.0.1:1/0",
            "redis_username": "mirror",
            "redis_password": "s3cret",
            "redis_ca_file": str(ca),
        }
    ).redis
    client = redis_client(settings)
    assert isinstance(client, Redis)
    kwargs = client.connection_pool.connection_kwargs
    assert client.connection_pool.connection_class is SSLConnection
    assert (kwargs["username"], kwargs["password"], kwargs["ssl_ca_certs"]) == ("mirror", "s3cret", str(ca))


def test_redis_client_builds_a_cluster_client_with_the_same_login_and_tls(tmp_path: Path) -> None:
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.connection import SSLConnection

    ca = tmp_path / "ca.pem"
    ca.write_text("")
    settings = Settings.from_flat(
        {
            "redis_url": "rediss://127.0.0.1:7001/0",
            "redis_cluster": "true",
            "redis_username": "mirror",
            "redis_password": "s3cret",
            "redis_ca_file": str(ca),
        }
    ).redis
    client = redis_client(settings, timeout_s=1.5)
    assert isinstance(client, RedisCluster)
    [seed] = client.nodes_manager.startup_nodes.values()
    kwargs = seed.connection_kwargs
    assert (seed.host, seed.port) == ("127.0.0.1", 7001)
    assert seed.connection_class is SSLConnection
    assert (kwargs["username"], kwargs["password"], kwargs["ssl_ca_certs"]) == ("mirror", "s3cret", str(ca))
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (1.5, 1.5)


@pytest.mark.parametrize(
    ("redis", "message"),
    [
        ({"redis_url": ""}, "no Redis"),
        ({"redis_url": "redis://:a@127.0.0.1:1/0", "redis_password": "b"}, "set only one"),
        ({"redis_url": "redis://u@127.0.0.1:1/0", "redis_username": "v"}, "set only one"),
        ({"redis_url": "redis://127.0.0.1:1/0", "redis_ca_file": "/etc/hostname"}, "not rediss://"),
        ({"redis_url": "rediss://127.0.0.1:1/0", "redis_ca_file": "/nonexistent/ca.pem"}, "no such file"),
        ({"redis_url": "unix:///tmp/redis.sock", "redis_cluster": "true"}, "redis:// or rediss://"),
        ({"redis_url": "redis://127.0.0.1:1/1", "redis_cluster": "true"}, "database 0"),
    ],
)
def test_redis_client_refuses_what_it_cannot_honour(redis: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        redis_client(Settings.from_flat(redis).redis)


def test_kafka_options_carry_security_and_route_the_log() -> None:
    kafka = KafkaConnection(
        bootstrap_servers="k:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="u",
        sasl_password="p",  # type: ignore[arg-type]
    )
    options = kafka_options(kafka, **{"group.id": "g"})
    assert {k: options[k] for k in kafka.librdkafka()} == kafka.librdkafka()
    assert options["sasl.password"] == "p" and options["group.id"] == "g"
    assert callable(getattr(options["logger"], "log", None))


def test_librdkafka_lines_go_to_python_logging_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    logger = kafka_options(KafkaConnection())["logger"]
    with caplog.at_level(logging.DEBUG, logger="streams.kafka"):
        logger.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connection refused")
    [record] = caplog.records
    assert record.levelno == logging.DEBUG and record.name == "streams.kafka"
    assert "ERROR" in record.getMessage() and "Connection refused" in record.getMessage()


def test_wait_for_kafka_logs_each_attempt_then_gives_up(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kafka = KafkaConnection(bootstrap_servers=f"127.0.0.1:{port}")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="streams.clients"), pytest.raises(InfraError) as caught:
        wait_for_kafka(kafka_admin(kafka), kafka, 3.0, setting="TACTFUL_X")
    assert time.monotonic() - started < 8
    assert f"127.0.0.1:{port} did not answer within 3s (set by TACTFUL_X)" in str(caught.value)
    waits = [r.getMessage() for r in caplog.records if r.name == "streams.clients"]
    assert waits and all(f"waiting for Kafka at 127.0.0.1:{port}" in w for w in waits)
    assert [f"attempt {n}:" in w for n, w in enumerate(waits, start=1)] == [True] * len(waits)


class _Error:
    """Stands in for the ``KafkaError`` librdkafka hands to ``error_cb``."""

    def __init__(self, code: int, text: str) -> None:
        self._code, self._text = code, text

    def code(self) -> int:
        return self._code

    def str(self) -> str:
        return self._text


@pytest.mark.parametrize(
    ("code", "text", "message"),
    [
        (
            KafkaError._AUTHENTICATION,
            "sasl_ssl://k:9093/bootstrap: SASL authentication error: invalid credentials"
            " (after 310ms in state AUTH_REQ)",
            "Kafka at k:9093 refused the login: SASL authentication error: invalid credentials "
            "(check TACTFUL_SASL_MECHANISM, TACTFUL_SASL_USERNAME and TACTFUL_SASL_PASSWORD)",
        ),
        (
            KafkaError._SSL,
            "sasl_ssl://k:9093/bootstrap: SSL handshake failed: certificate verify failed"
            " (after 4ms in state SSL_HANDSHAKE)",
            "Kafka at k:9093 failed the TLS handshake: SSL handshake failed: certificate verify failed "
            "(check TACTFUL_SSL_CAFILE)",
        ),
    ],
)
def test_a_refused_login_or_handshake_raises_one_line(code: int, text: str, message: str) -> None:
    on_error = kafka_options(KafkaConnection(bootstrap_servers="k:9093"))["error_cb"]
    with pytest.raises(InfraError) as caught:
        on_error(_Error(code, text))
    assert str(caught.value) == message


def test_a_broker_that_is_down_is_left_to_librdkafka_retries() -> None:
    on_error = kafka_options(KafkaConnection())["error_cb"]
    on_error(_Error(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    on_error(_Error(KafkaError._TRANSPORT, "sasl_ssl://k:9093/bootstrap: Connection refused"))
