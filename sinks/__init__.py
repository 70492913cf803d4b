"""The sinks: what the worker's topics become for billing and for alerting.

Each sink is a folder of its own and they never import each other nor the worker
(`tokenops.streams`): what they share with it (dead-letter headers, watermark rules,
quotas) lives in tokenops core and `tokenops.quotas`.

Folders: `clickhouse/` (the billing store and its sink), `prometheus/` (live totals,
quota usage and lag as Prometheus metrics).
"""
