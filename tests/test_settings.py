"""Settings: five frozen sections read from the flat TACTFUL_* variables they always had."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from pydantic import ValidationError

from streams.errors import ConfigError
from streams.settings import VARIABLES, Settings, unknown_variables

# The variable names are a public interface (deploy files, operators' scripts):
# renaming one breaks deployments silently, so the list is pinned here.
PUBLIC_VARIABLES = [
    "ADVERTISED_URL",
    "API_TOKEN",
    "APP_ID",
    "AUDIT_TOPIC",
    "BATCH_MAX",
    "BOOTSTRAP_SERVERS",
    "CATALOG_TOPIC",
    "DATA_DIR",
    "DECISION_TOPIC_PREFIX",
    "DLQ_TOPIC",
    "FETCH_MAX_WAIT",
    "IDLE_AFTER",
    "INPUT_TOPIC",
    "INSTANCE_ID",
    "PARTITIONS",
    "PROCESSING_GUARANTEE",
    "PRODUCER_LINGER",
    "REDIS_CA_FILE",
    "REDIS_CLUSTER",
    "REDIS_PASSWORD",
    "REDIS_PREFIX",
    "REDIS_URL",
    "REDIS_USERNAME",
    "REPLICATION",
    "SASL_MECHANISM",
    "SASL_PASSWORD",
    "SASL_USERNAME",
    "SCHEMA_REGISTRY_URL",
    "SECURITY_PROTOCOL",
    "SESSION_TIMEOUT",
    "SSL_CAFILE",
    "SSL_CERTFILE",
    "SSL_KEYFILE",
    "START_TIMEOUT",
    "STORE",
    "SWEEP_EVERY",
    "TOPOLOGIES",
    "WEB_HOST",
    "WEB_PORT",
]


def test_variable_names_are_unchanged() -> None:
    assert sorted(name.upper() for name in VARIABLES) == sorted(PUBLIC_VARIABLES)


@pytest.mark.parametrize(
    ("variable", "value", "read"),
    [
        ("TACTFUL_BOOTSTRAP_SERVERS", "k1:9092,k2:9092", lambda s: s.kafka.servers),
        ("TACTFUL_INPUT_TOPIC", "tp", lambda s: s.topics.input),
        ("TACTFUL_DECISION_TOPIC_PREFIX", "d.", lambda s: s.topics.decision("sms")),
        ("TACTFUL_PARTITIONS", "12", lambda s: s.topics.partitions),
        ("TACTFUL_IDLE_AFTER", "1m", lambda s: s.processing.idle_after_ms),
        ("TACTFUL_DATA_DIR", "/tmp/x", lambda s: s.processing.data_dir),
        ("TACTFUL_REDIS_URL", "", lambda s: s.redis.url),
        ("TACTFUL_REDIS_PASSWORD", "pw", lambda s: s.redis.password.get_secret_value()),
        ("TACTFUL_REDIS_USERNAME", "mirror", lambda s: s.redis.username),
        ("TACTFUL_REDIS_CA_FILE", "/etc/ca.pem", lambda s: s.redis.ca_file),
        ("TACTFUL_REDIS_CLUSTER", "true", lambda s: s.redis.cluster),
        ("TACTFUL_WEB_PORT", "7000", lambda s: s.http.advertised()),
        ("TACTFUL_INSTANCE_ID", "tactful-2", lambda s: s.topics.instance_id),
        ("TACTFUL_INSTANCE_ID", "", lambda s: s.topics.instance_id),
    ],
)
def test_each_variable_lands_in_its_section(variable: str, value: str, read: object) -> None:
    expected = {
        "TACTFUL_BOOTSTRAP_SERVERS": ["k1:9092", "k2:9092"],
        "TACTFUL_INPUT_TOPIC": "tp",
        "TACTFUL_DECISION_TOPIC_PREFIX": "d.sms",
        "TACTFUL_PARTITIONS": 12,
        "TACTFUL_IDLE_AFTER": 60_000,
        "TACTFUL_DATA_DIR": Path("/tmp/x"),
        "TACTFUL_REDIS_URL": None,
        "TACTFUL_REDIS_PASSWORD": "pw",
        "TACTFUL_REDIS_USERNAME": "mirror",
        "TACTFUL_REDIS_CA_FILE": Path("/etc/ca.pem"),
        "TACTFUL_REDIS_CLUSTER": True,
        "TACTFUL_WEB_PORT": "http://127.0.0.1:7000",
        "TACTFUL_INSTANCE_ID": "tactful-2" if value else None,
    }[variable]
    assert callable(read)
    assert read(Settings.from_env({variable: value})) == expected


def test_overrides_win_and_none_falls_back_to_the_variable() -> None:
    env = {"TACTFUL_WEB_PORT": "7000", "TACTFUL_INPUT_TOPIC": "from-env"}
    s = Settings.from_env(env, web_port=8000, input_topic=None)
    assert (s.http.port, s.topics.input) == (8000, "from-env")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TACTFUL_WEB_PORT": "http"}, "TACTFUL_WEB_PORT"),
        ({"TACTFUL_PARTITIONS": "0"}, "TACTFUL_PARTITIONS"),
        ({"TACTFUL_IDLE_AFTER": "soon"}, "TACTFUL_IDLE_AFTER"),
        ({"TACTFUL_SECURITY_PROTOCOL": "TLS"}, "TACTFUL_SECURITY_PROTOCOL"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert message.startswith(named + ":")
    assert "\n" not in message
    assert "processing." not in message and "http." not in message


def test_an_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="no such setting: web_prot"):
        Settings.from_env({}, web_prot=1)


def test_unknown_variables_are_named_with_a_suggestion() -> None:
    env = {
        "TACTFUL_BOOTSTRAP_SERVER": "x",  # misspelt
        "TACTFUL_WEB_PORT": "1",  # a setting
        "TACTFUL_KAFKA_PORT": "1",  # read by deploy/local/services.sh
        "TACTFUL_NOTHING_LIKE_IT": "1",
        "PATH": "/bin",
    }
    warnings = unknown_variables(env)
    assert warnings == [
        "TACTFUL_BOOTSTRAP_SERVER is not a tactful setting and is ignored; did you mean TACTFUL_BOOTSTRAP_SERVERS?",
        "TACTFUL_NOTHING_LIKE_IT is not a tactful setting and is ignored",
    ]


def test_sections_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.topics.input = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.kafka = s.kafka  # type: ignore[misc]


def test_one_connection_renders_both_clients_sasl_ssl(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "TACTFUL_BOOTSTRAP_SERVERS": "a:1, b:2",
            "TACTFUL_SECURITY_PROTOCOL": "SASL_SSL",
            "TACTFUL_SASL_MECHANISM": "SCRAM-SHA-256",
            "TACTFUL_SASL_USERNAME": "u",
            "TACTFUL_SASL_PASSWORD": "p",
        }
    )
    assert s.kafka.librdkafka() == {
        "bootstrap.servers": "a:1, b:2",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "u",
        "sasl.password": "p",
    }
    opts = s.kafka.faust()
    assert [str(u) for u in opts["broker"]] == ["kafka://a:1", "kafka://b:2"]
    creds = opts["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value) == ("u", "p", "SCRAM-SHA-256")
    assert isinstance(creds.ssl_context, ssl.SSLContext)


def test_plaintext_has_no_credentials_and_ssl_has_a_context() -> None:
    assert Settings().kafka.faust()["broker_credentials"] is None
    assert Settings().kafka.ssl_context() is None
    tls = Settings.from_env({"TACTFUL_SECURITY_PROTOCOL": "SSL"}).kafka
    assert isinstance(tls.faust()["broker_credentials"], faust.SSLCredentials)
    assert tls.librdkafka()["security.protocol"] == "SSL"
