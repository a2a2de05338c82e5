"""Frozen, validated settings from ``RISKSTREAM_*`` environment variables and CLI flags.

Everything has a safe embedded default for development (one machine, no servers, data under
``RISKSTREAM_HOME``). Outside development, defaults that are unsafe there are refused: an
API reachable from other hosts without an API key, and a results database nobody chose.

>>> Settings(home="/tmp/rs").resolved_db_url()
'sqlite:////tmp/rs/results.db'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RISKSTREAM_", frozen=True, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    home: Path = Path(".riskstream")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    #: Results database (SQLAlchemy URL). Default: SQLite file under ``home``.
    db_url: str | None = None
    #: Per-user state backend: ``memory://`` (snapshotted under ``home``) or
    #: ``redis://[:password@]host:port/db`` (shared by workers and the API; docs/stores.md).
    state_url: str = "memory://"
    #: Where the served model comes from: ``models:/NAME@ALIAS`` (MLflow registry; the
    #: default ``models:/riskstream-detector@champion``, hot-swapped when the alias moves) or
    #: a bundle file path.
    model_uri: str = "models:/riskstream-detector@champion"
    #: How often servers poll the registry for alias moves (seconds).
    registry_poll_s: float = Field(10.0, gt=0)
    #: How often servers look for stored outcome labels not yet in the label-aware state
    #: (imported offline, or received before their transaction) (seconds).
    label_sweep_s: float = Field(10.0, gt=0)
    #: Run ``riskstream retrain`` (champion/challenger gate) from this process every so many
    #: seconds, as a child process; 0 = never (use cron, or a Kubernetes CronJob).
    retrain_every_s: float = Field(0.0, ge=0)
    #: Bundle file written by ``train`` (and served when ``model_uri`` is a path).
    model_path: Path | None = None
    review_threshold: float = Field(0.99, gt=0, le=1)
    block_threshold: float = Field(0.999, gt=0, le=1)
    #: Micro-batch: at most this many events, or whatever arrived within ``batch_timeout_ms``.
    batch_size: int = Field(500, ge=1, le=100_000)
    batch_timeout_ms: int = Field(200, ge=1, le=60_000)
    #: Embedded simulator feeding ``riskstream run``: events per second and population.
    sim_rate: float = Field(200.0, gt=0)
    sim_users: int = Field(2000, ge=10)
    sim_seed: int = 7
    #: State snapshot period for the in-memory store (seconds).
    snapshot_every_s: float = Field(30.0, gt=0)
    #: Largest accepted request body; /predict takes one transaction (~1 KiB).
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    #: Largest body of ``POST /predict/batch`` (10,000 transactions of ~300 bytes fit).
    max_batch_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    #: Most transactions one ``POST /predict/batch`` call may carry.
    predict_batch_max: int = Field(10_000, ge=1, le=100_000)
    #: Concurrent ``/predict`` calls are scored together: once calls overlap, the batcher
    #: waits this long for more before scoring (0: only what queued during the last batch).
    predict_window_ms: float = Field(1.0, ge=0, le=100)
    api_key: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # -- production stores (docs/stores.md) --------------------------------------------------
    #: Redis state: key prefix (deployments or tests sharing one Redis keep apart by prefix).
    state_prefix: str = Field("rs:", min_length=1)
    #: Redis state: a user's (or merchant's) record expires this long after its last update,
    #: in seconds; 0 keeps records forever. 90 days keeps monthly payers' profiles.
    state_ttl_s: int = Field(90 * 86400, ge=0)
    #: Bring the results schema to the current Alembic revision when a process opens it.
    #: Turn off to migrate only with ``riskstream db migrate`` (e.g. in a release step).
    db_auto_migrate: bool = True
    # -- Kafka streaming (docs/streaming.md) --------------------------------------------------
    #: Bootstrap servers (``host:port,...``) of any Kafka-protocol cluster. ``riskstream worker``
    #: and ``produce`` need it (or ``--bootstrap``); ``run --kafka`` sets it.
    kafka_bootstrap: str | None = None
    #: Topic names. Input is keyed by ``user_id``; ``""`` for ``scored`` disables that topic.
    kafka_topic_transactions: str = "transactions"
    kafka_topic_scored: str = "transactions.scored"
    kafka_topic_alerts: str = "alerts"
    kafka_topic_dlq: str = "transactions.dlq"
    #: Outcome labels (JSON label objects, as ``POST /labels`` takes them), read by the
    #: workers in their own group ``<kafka_group_id>.labels``; ``""`` = no labels topic.
    kafka_topic_labels: str = "labels"
    #: Missing topics are created at start-up with the admin client (off: they must exist).
    kafka_create_topics: bool = True
    #: Partitions of created topics: the most workers that can share the input (12 leaves room
    #: to scale out; a partition count can grow later but then keys move between partitions).
    kafka_partitions: int = Field(12, ge=1, le=10_000)
    #: Replication factor of created topics: 1 for a single dev broker, 3 in production.
    kafka_replication: int = Field(1, ge=1, le=16)
    #: Consumer group shared by all scorer workers (they split the partitions).
    kafka_group_id: str = Field("riskstream-scorers", min_length=1)
    #: librdkafka properties passed through verbatim, as a JSON object, e.g. SASL/TLS:
    #: ``{"security.protocol":"SASL_SSL","sasl.mechanism":"SCRAM-SHA-512",
    #: "sasl.username":"...","sasl.password":"...","ssl.ca.location":"/etc/ca.pem"}``.
    #: Secret-typed so passwords never show in logs or reprs.
    kafka_config: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("kafka_config", mode="before")
    @classmethod
    def _kafka_config_text(cls, value: Any) -> Any:
        """JSON numbers and booleans as librdkafka spells them: ``{"linger.ms": 50}`` is
        ``"50"``, ``true`` is ``"true"`` (every librdkafka property is set as text)."""
        if not isinstance(value, dict):
            return value

        def text(v: Any) -> Any:
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, float) and v.is_integer():
                return str(int(v))  # 6e4 -> "60000": integer properties refuse "60000.0"
            return str(v) if isinstance(v, int | float) else v

        return {k: text(v) for k, v in value.items()}

    #: Consumer micro-batch: up to this many messages, or what arrived within the timeout,
    #: counted from when the previous batch was handed out (a cadence: time spent processing
    #: counts). Large batches amortise the per-batch costs (database transaction, producer
    #: flush); under load they fill long before the timeout, which only bounds the wait (and
    #: so the latency) when traffic is light.
    kafka_batch_size: int = Field(5000, ge=1, le=100_000)
    kafka_batch_timeout_ms: int = Field(20, ge=1, le=60_000)
    #: Messages larger than this are dead-lettered unread (librdkafka's default producer limit).
    kafka_max_message_bytes: int = Field(1_000_000, ge=1024)
    #: Dead-letter records carry the original bytes up to this size (then truncated, with the
    #: original size in a header): 900 kB stays under Kafka's default 1 MB message limit.
    kafka_dlq_max_payload_bytes: int = Field(900_000, ge=1024)
    #: Group session timeout: a dead worker's partitions move after this long. Kafka's own
    #: default is 45 s; 10 s moves them sooner at the cost of more heartbeats.
    kafka_session_timeout_ms: int = Field(10_000, ge=1000, le=300_000)
    #: A worker blocked this long (e.g. retrying a results-store outage) leaves the group so
    #: its partitions can move; it rejoins when it recovers.
    kafka_max_poll_interval_ms: int = Field(300_000, ge=10_000)
    #: Producer: give up on a publish after this long (the batch is then retried, not lost).
    kafka_delivery_timeout_ms: int = Field(30_000, ge=1000)
    #: In-memory state only: per-partition state snapshots (and the offset commit that goes
    #: with them) every this many seconds, and on revocation and shutdown. A crash replays
    #: at most this much input; replays change neither results nor state.
    kafka_checkpoint_every_s: float = Field(5.0, gt=0)
    #: Whether ``transactions.scored`` records carry the ``features`` object: about half of a
    #: record's bytes, and 3-6 us of a worker's CPU per transaction (rendering, compressing,
    #: sending; docs/streaming.md). The results store keeps them either way: turn this off
    #: when no consumer of the topic reads them.
    kafka_scored_features: bool = True

    @model_validator(mode="after")
    def _safe(self) -> Settings:
        if self.review_threshold > self.block_threshold:
            raise ValueError("review_threshold must be <= block_threshold")
        if self.env != "development":
            if self.host not in LOOPBACK and self.api_key is None:
                raise ValueError(
                    f"refusing to serve on {self.host} without RISKSTREAM_API_KEY outside "
                    "development"
                )
            if self.env == "production" and self.db_url is None:
                raise ValueError("set RISKSTREAM_DB_URL explicitly in production")
        return self

    def resolved_db_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home.resolve() / 'results.db'}"

    def resolved_model_path(self) -> Path:
        return self.model_path or self.home / "models" / "current.npz"

    @property
    def state_snapshot_path(self) -> Path:
        return self.home / "state.npz"
