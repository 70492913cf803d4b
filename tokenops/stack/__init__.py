"""The local stack: a real Kafka broker, Prometheus and Alertmanager, started by tokenops.

Modules: `stack` (up, down, status as one unit), `kafka` (the KRaft broker), `alerting`
(Prometheus and Alertmanager), `tools` (finding and installing their programs),
`process` (pid-file processes), `services` (pipeline processes beside the stack),
`targets` (scrape targets), `errors`.
"""

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
