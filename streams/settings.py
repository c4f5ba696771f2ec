"""One frozen settings object for a live worker.

Built by the command line from ``TACTFUL_*`` environment variables (and
flags); everything else takes a :class:`Settings` and reads nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.timeutil import parse_duration


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TACTFUL_", frozen=True, extra="forbid")

    # Kafka
    bootstrap_servers: str = "127.0.0.1:19092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    schema_registry_url: str | None = None

    # Topics
    app_id: str = "tactful"
    input_topic: str = "touchpoints"
    dlq_topic: str = "touchpoints.dlq"
    decision_topic_prefix: str = "decisions."
    audit_topic: str = "decisions.audit"
    partitions: int = Field(default=4, ge=1)
    replication: int = Field(default=1, ge=1)

    # Processing
    topologies: Path = Path("topologies")
    # Only at-least-once is offered (docs/live.md says why); decisions carry deterministic ids.
    processing_guarantee: Literal["at_least_once"] = "at_least_once"
    # The most input records one batch may hold (a fetch can hold far more).
    batch_max: int = Field(default=2000, ge=1)
    idle_after: str = Field(default="30s", description="advance an idle partition's stream time after this")
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
    store: str = "memory://"
    data_dir: Path = Path(".run/worker")

    # Redis mirror
    redis_url: str | None = "redis://127.0.0.1:16379/0"  # empty: no mirror
    redis_password: SecretStr | None = None
    redis_prefix: str = "tactful"

    # HTTP
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    api_token: SecretStr | None = None
    # Where other workers reach this one; default: web_host, or the host name when
    # web_host listens on every interface (containers).
    advertised_url: str | None = None

    @field_validator("redis_url")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

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

    def advertised(self) -> str:
        if self.advertised_url:
            return self.advertised_url
        host = self.web_host
        if host in ("0.0.0.0", "::", ""):
            import socket

            host = socket.gethostname()
        return f"http://{host}:{self.web_port}"

    def decision_topic(self, channel: str) -> str:
        return f"{self.decision_topic_prefix}{channel}"

    def kafka_client_options(self) -> dict[str, str | int | float | bool]:
        """librdkafka (confluent-kafka) options for admin and tools."""
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
