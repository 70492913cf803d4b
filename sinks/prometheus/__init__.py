"""The Prometheus sink (`tokenops sink prometheus`): live per-tenant window totals, quota
usage and consumer lag as Prometheus metrics for quota alerting. See docs/operations.md.

Modules: `sink` (the consumer loop), `state` (bounded exporter state), `collector` (the
metric families), `quotas` (quota gauges), `distinct` (the tenant-count estimate),
`lag` (consumer-lag polling), `settings`."""
