"""tokenops: billing-grade token-usage metering on Kafka, Faust, ClickHouse and Prometheus.

The package root holds what every component shares (tokenops core), importing nothing
above it: `settings` (shared settings models and `load`), `errors` (the root error),
`secrets` (masking), `logs` and `progress_log`, `listen` (the HTTP listener), `paths`,
`placement` (a tenant's home partition), `reach` and `topics` (Kafka metadata and the
topics tokenops owns), `deadletters` (dead-letter headers and their label vocabulary),
`config` and `config_help` (`tokenops config show`). The folders are described in
docs/architecture.md; `make lint` checks their import rules.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tokenops")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
