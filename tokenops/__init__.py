"""tokenops: billing-grade token-usage metering on Kafka, Faust, ClickHouse and Prometheus."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tokenops")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
