"""The local stack: a real Kafka broker, Prometheus and Alertmanager, started by tokenops."""

from tokenops.stack.alerting import AlertmanagerServer, PrometheusServer
from tokenops.stack.kafka import KafkaBroker
from tokenops.stack.stack import ComponentStatus, LocalStack

__all__ = [
    "AlertmanagerServer",
    "ComponentStatus",
    "KafkaBroker",
    "LocalStack",
    "PrometheusServer",
]
