"""Prometheus metrics of the ClickHouse sink; label values are bounded (table, topic
role, `sinks/base.py` reason)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SinkMetrics:
    """The sink's health: rows written, failed writes, and whether it is blocked."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            "tokenops_clickhouse_sink_rows_total",
            "Rows written to ClickHouse, by table.",
            ["table"],
            registry=registry,
        )
        self.records = Counter(
            "tokenops_clickhouse_sink_records_total",
            "Kafka records consumed, by topic role (aggregates, usage, dead_letter).",
            ["role"],
            registry=registry,
        )
        self.invalid = Counter(
            "tokenops_clickhouse_sink_invalid_records_total",
            "Records not stored, by topic role and reason: unreadable (the worker "
            "dead-letters them), or not_home_partition, usage records outside their tenant's "
            "home partition (the worker forwards them home).",
            ["role", "reason"],
            registry=registry,
        )
        self.batches = Counter(
            "tokenops_clickhouse_sink_batches_total",
            "Batches written and committed.",
            registry=registry,
        )
        self.write_failures = Counter(
            "tokenops_clickhouse_sink_write_failures_total",
            "Failed attempts to write a batch; each one is retried with backoff.",
            registry=registry,
        )
        self.blocked = Gauge(
            "tokenops_clickhouse_sink_blocked",
            "1 while ClickHouse writes fail and the sink holds its batch and commits nothing.",
            registry=registry,
        )
        self.last_commit = Gauge(
            "tokenops_clickhouse_sink_last_commit_timestamp_seconds",
            "When offsets were last committed after a durable batch.",
            registry=registry,
        )
        self.write_seconds = Histogram(
            "tokenops_clickhouse_sink_write_seconds",
            "Time to write one batch (all tables and rollups), successful attempts only.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
