"""One frozen settings object for a live worker, in sections.

:class:`Settings` holds five frozen sections: the Kafka connection, the
topics, processing, the Redis mirror and HTTP. Everything takes a
:class:`Settings` (or one of its sections) and reads nothing else; only the
command line builds one, with :meth:`Settings.from_env` over ``TACTFUL_*``
environment variables and its own flags.

The variables keep the flat names they always had (``TACTFUL_INPUT_TOPIC``,
``TACTFUL_WEB_PORT``, ...): :data:`VARIABLES` maps each one to its section and
field, so a bad value is reported by the variable that holds it, and a
``TACTFUL_*`` variable that names nothing is found (:func:`unknown_variables`)
instead of being silently ignored.

The Kafka connection renders the client options of both Kafka clients in use
(:meth:`KafkaConnection.librdkafka` for confluent-kafka, :meth:`KafkaConnection.faust`
for Faust and aiokafka), so security settings are translated in one place.
"""

from __future__ import annotations

import difflib
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from streams.errors import ConfigError
from streams.timeutil import parse_duration

ENV_PREFIX = "TACTFUL_"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaConnection(_Section):
    """Where the brokers are and how to authenticate; rendered for each client library."""

    bootstrap_servers: str = "127.0.0.1:19092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    schema_registry_url: str | None = None

    @field_validator("schema_registry_url")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @property
    def servers(self) -> list[str]:
        return [hp.strip() for hp in self.bootstrap_servers.split(",") if hp.strip()]

    def librdkafka(self) -> dict[str, str | int | float | bool]:
        """confluent-kafka (librdkafka) options: admin, the feed, the decision readers."""
        opts: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            opts["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            opts["sasl.username"] = self.sasl_username
        if self.sasl_password:
            opts["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_cafile:
            opts["ssl.ca.location"] = str(self.ssl_cafile)
        if self.ssl_certfile:
            opts["ssl.certificate.location"] = str(self.ssl_certfile)
        if self.ssl_keyfile:
            opts["ssl.key.location"] = str(self.ssl_keyfile)
        return opts

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for Python clients (Faust, aiokafka), or None without TLS."""
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        context = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        if self.ssl_certfile:
            context.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None)
        return context

    def faust(self) -> dict[str, Any]:
        """Faust's ``App`` options for the same connection: ``broker`` and ``broker_credentials``."""
        import faust  # the worker's dependency; the other commands never import it
        from yarl import URL

        credentials: Any = None
        context = self.ssl_context()
        if self.security_protocol.startswith("SASL"):
            credentials = faust.SASLCredentials(
                username=self.sasl_username or "",
                password=self.sasl_password.get_secret_value() if self.sasl_password else "",
                mechanism=self.sasl_mechanism or "SCRAM-SHA-512",
                ssl_context=context,
            )
        elif context is not None:
            credentials = faust.SSLCredentials(context)
        return {"broker": [URL(f"kafka://{hp}") for hp in self.servers], "broker_credentials": credentials}


class Topics(_Section):
    """The worker's topics, its consumer group (``app_id``) and how new topics are made."""

    app_id: str = "tactful"
    # Static group membership (KIP-345): a stable name per worker (a StatefulSet pod's
    # name). A worker restarted under the same name takes its member's place at once,
    # instead of the group waiting for the killed member's session to expire.
    instance_id: str | None = None
    input: str = "touchpoints"
    dlq: str = "touchpoints.dlq"
    decision_prefix: str = "decisions."
    audit: str = "decisions.audit"
    # The compacted topic of catalog versions (streams/live/catalog); default "<app_id>.catalog".
    catalog_topic: str | None = None
    partitions: int = Field(default=4, ge=1)
    replication: int = Field(default=1, ge=1)

    @field_validator("instance_id", "catalog_topic")
    @classmethod
    def _no_instance_id(cls, value: str | None) -> str | None:
        return value or None

    def decision(self, channel: str) -> str:
        return f"{self.decision_prefix}{channel}"

    @property
    def catalog(self) -> str:
        return self.catalog_topic or f"{self.app_id}.catalog"


class Processing(_Section):
    """How the worker processes: topologies, batching, time, state."""

    topologies: Path = Path("topologies")
    # exactly_once: a batch's records and its input offsets go in one Kafka transaction per
    # input partition (streams/live/faust/transactions.py). The default: `python -m bench
    # guarantees` measured no throughput cost and about a second more per restart (README).
    # at_least_once: Faust commits offsets, channels drop repeats by decision_id (docs/live.md).
    guarantee: Literal["at_least_once", "exactly_once"] = "exactly_once"
    # The most input records one batch may hold (a fetch can hold far more).
    batch_max: int = Field(default=2000, ge=1)
    # Advance an idle partition's stream time after this much wall-clock quiet.
    idle_after: str = "30s"
    sweep_every: str = "10m"
    # For records Faust sends itself (its default 0 sends each on its own). The
    # runtime's own go as closed record batches, which do not linger (live/sink.py).
    producer_linger: float = Field(default=0.005, ge=0, le=1)
    # How long the broker may hold an empty fetch. Faust hard-codes 1.5 s; measured
    # under steady live traffic, a worker that fell behind once then idled ~1.1 s per
    # cycle and stayed ~1 s behind, where 0.1 s let it catch up (docs/live.md).
    fetch_max_wait: float = Field(default=0.1, gt=0, le=30)
    # How soon a dead worker's partitions move to the others (Faust's default is 60s).
    session_timeout: float = Field(default=10.0, gt=0)
    # Seconds a starting worker (or `tactful feed`) waits for the brokers before it gives up.
    start_timeout: float = Field(default=60.0, gt=0)
    store: str = "memory://"
    data_dir: Path = Path(".run/worker")

    @field_validator("idle_after", "sweep_every")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def idle_after_ms(self) -> int:
        return parse_duration(self.idle_after)

    @property
    def sweep_every_ms(self) -> int:
        return parse_duration(self.sweep_every)


class RedisSettings(_Section):
    """The suppression mirror's Redis; no URL means no mirror.

    ``rediss://`` speaks TLS, verified against ``ca_file`` (default: the
    system's CAs); ``username`` and ``password`` log in as an ACL user.
    ``cluster`` says the URL names one node of a Redis Cluster, which the
    client asks for the others (a flag, not a URL scheme, so the URL stays one
    that redis-cli and every other client read).
    """

    url: str | None = "redis://127.0.0.1:16379/0"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    cluster: bool = False
    prefix: str = "tactful"

    @field_validator("url")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None


class Http(_Section):
    """The worker's web server: metrics, health, readiness, the customer API."""

    host: str = "127.0.0.1"
    port: int = Field(default=6066, ge=1, le=65535)
    api_token: SecretStr | None = None
    # Where other workers reach this one; default: host, or the host name when
    # host listens on every interface (containers).
    advertised_url: str | None = None

    def advertised(self) -> str:
        if self.advertised_url:
            return self.advertised_url
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            import socket

            host = socket.gethostname()
        return f"http://{host}:{self.port}"


# Each TACTFUL_<NAME> variable (and command-line override ``name``) -> (section, field).
VARIABLES: dict[str, tuple[str, str]] = {
    **{
        name: ("kafka", name)
        for name in (
            "bootstrap_servers",
            "security_protocol",
            "sasl_mechanism",
            "sasl_username",
            "sasl_password",
            "ssl_cafile",
            "ssl_certfile",
            "ssl_keyfile",
            "schema_registry_url",
        )
    },
    "app_id": ("topics", "app_id"),
    "instance_id": ("topics", "instance_id"),
    "input_topic": ("topics", "input"),
    "dlq_topic": ("topics", "dlq"),
    "decision_topic_prefix": ("topics", "decision_prefix"),
    "audit_topic": ("topics", "audit"),
    "catalog_topic": ("topics", "catalog_topic"),
    "partitions": ("topics", "partitions"),
    "replication": ("topics", "replication"),
    "topologies": ("processing", "topologies"),
    "processing_guarantee": ("processing", "guarantee"),
    **{
        name: ("processing", name)
        for name in (
            "batch_max",
            "idle_after",
            "sweep_every",
            "producer_linger",
            "fetch_max_wait",
            "session_timeout",
            "start_timeout",
            "store",
            "data_dir",
        )
    },
    "redis_url": ("redis", "url"),
    "redis_password": ("redis", "password"),
    "redis_prefix": ("redis", "prefix"),
    "redis_username": ("redis", "username"),
    "redis_ca_file": ("redis", "ca_file"),
    "redis_cluster": ("redis", "cluster"),
    "web_host": ("http", "host"),
    "web_port": ("http", "port"),
    "api_token": ("http", "api_token"),
    "advertised_url": ("http", "advertised_url"),
}
_BY_FIELD = {where: name for name, where in VARIABLES.items()}


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kafka: KafkaConnection = KafkaConnection()
    topics: Topics = Topics()
    processing: Processing = Processing()
    redis: RedisSettings = RedisSettings()
    http: Http = Http()

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> Settings:
        """Settings from ``TACTFUL_*`` variables in ``environ``, with ``overrides`` (flat names) on top.

        ``None`` overrides are left out, so unset command-line flags fall back to
        the variables. Variables that name no setting are ignored here (see
        :func:`unknown_variables`). A bad value raises :class:`ConfigError`
        naming its variable.
        """
        flat: dict[str, object] = {}
        for var, text in environ.items():
            if var.startswith(ENV_PREFIX) and var[len(ENV_PREFIX) :].lower() in VARIABLES:
                flat[var[len(ENV_PREFIX) :].lower()] = text
        for name, override in overrides.items():
            if name not in VARIABLES:
                raise ConfigError(f"no such setting: {name}")
            if override is not None:
                flat[name] = override
        return cls.from_flat(flat)

    @classmethod
    def from_flat(cls, flat: Mapping[str, object]) -> Settings:
        """Settings from flat names (``input_topic``, ``web_port``, ...), as the variables spell them."""
        sections: dict[str, dict[str, object]] = {}
        for name, value in flat.items():
            section, field = VARIABLES[name]
            sections.setdefault(section, {})[field] = value
        try:
            return cls.model_validate(sections)
        except ValidationError as exc:
            raise ConfigError(_explain(exc)) from exc


def _explain(exc: ValidationError) -> str:
    """One line per bad value, naming the variable that holds it."""
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"][:2])
        name = _BY_FIELD.get((loc[0], loc[1])) if len(loc) == 2 else None
        where = f"{ENV_PREFIX}{name.upper()}" if name else ".".join(loc)
        value = error.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{where}: {error['msg']}{shown}")
    return "; ".join(lines)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per ``TACTFUL_*`` variable that names no setting, with the likely intended one.

    Variables read by the local service scripts and compose files are not
    settings; they are listed in :data:`OTHER_VARIABLES`.
    """
    known = [f"{ENV_PREFIX}{name.upper()}" for name in VARIABLES]
    out = []
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var in known or var in OTHER_VARIABLES:
            continue
        # Compared without the prefix, which every name shares and which would make anything look close.
        close = difflib.get_close_matches(var[len(ENV_PREFIX) :].lower(), list(VARIABLES), n=1)
        hint = f"; did you mean {ENV_PREFIX}{close[0].upper()}?" if close else ""
        out.append(f"{var} is not a tactful setting and is ignored{hint}")
    return out


# TACTFUL_* variables that are not worker settings: read by deploy/local/*.sh and compose.
OTHER_VARIABLES = frozenset(
    {
        "TACTFUL_KAFKA_VERSION",
        "TACTFUL_KAFKA_PORT",
        "TACTFUL_KAFKA_CONTROLLER_PORT",
        "TACTFUL_KAFKA_HEAP",
        "TACTFUL_KAFKA_START_TIMEOUT",
        "TACTFUL_REDIS_PORT",
        # deploy/local/registry.sh
        "TACTFUL_REGISTRY_VERSION",
        "TACTFUL_REGISTRY_PORT",
        "TACTFUL_REGISTRY_HEAP",
        "TACTFUL_REGISTRY_START_TIMEOUT",
        "TACTFUL_RUN_DIR",
        "TACTFUL_CACHE_DIR",
        "TACTFUL_PYTHON",
        # deploy/local/kafka-secure.sh: the SASL_SSL broker's ports
        "TACTFUL_SECURE_KAFKA_PORT",
        "TACTFUL_SECURE_KAFKA_CONTROLLER_PORT",
        # deploy/local/redis-cluster.sh
        "TACTFUL_REDIS_CLUSTER_DIR",
        "TACTFUL_REDIS_CLUSTER_PORT",
        "TACTFUL_REDIS_TLS_PORT",
        "TACTFUL_REDIS_ACL_USER",
        "TACTFUL_REDIS_ACL_PASSWORD",
        # deploy/compose: image pins
        "TACTFUL_KAFKA_IMAGE",
        "TACTFUL_REDIS_IMAGE",
        "TACTFUL_PROMETHEUS_IMAGE",
        "TACTFUL_GRAFANA_IMAGE",
    }
)
