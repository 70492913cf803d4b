"""`tokenops replication lag`: MirrorMaker's lag per source region, served to Prometheus.

Every `poll_interval_s` it measures each source region (`lag.region_lag`) and sets

    tokenops_replication_lag_records{source_region, target_region}
    tokenops_replication_lag_seconds{source_region, target_region}
    tokenops_replication_lag_up{source_region, target_region}   1 when the last poll worked

so the alert TokenopsReplicationLagHigh (deploy/prometheus/rules) fires while MirrorMaker
is down or behind. A poll that fails (a cluster unreachable) keeps the last values and
sets `_up` to 0; the exporter itself stays up.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry, Gauge

from tokenops.listen import Reply, Request, SafeHTTPServer, metrics_route
from tokenops.replication.lag import region_lag
from tokenops.replication.settings import ReplicationSettings
from tokenops.settings import KafkaSettings

logger = logging.getLogger(__name__)

LABELS = ("source_region", "target_region")


class LagExporter:
    def __init__(self, settings: ReplicationSettings, central: KafkaSettings, topic: str) -> None:
        self.settings, self.central, self.topic = settings, central, topic
        self.registry = CollectorRegistry()
        self.records = Gauge(
            "tokenops_replication_lag_records",
            "Records of the source region's usage topic not yet committed as replicated.",
            LABELS,
            registry=self.registry,
        )
        self.seconds = Gauge(
            "tokenops_replication_lag_seconds",
            "Age of the oldest source record not yet committed as replicated (0: none).",
            LABELS,
            registry=self.registry,
        )
        self.up = Gauge(
            "tokenops_replication_lag_up",
            "1 when the last measurement of this source region succeeded.",
            LABELS,
            registry=self.registry,
        )
        self.polled = threading.Event()

    def poll_once(self) -> None:
        target = self.settings.target_region
        for source, servers in self.settings.sources.items():
            source_kafka = self.central.model_copy(update={"bootstrap_servers": servers})
            try:
                lag = region_lag(self.central, source, source_kafka, self.topic)
            except Exception as exc:  # a region unreachable must not stop the others
                logger.warning("replication lag of %s: %s", source, exc)
                self.up.labels(source, target).set(0)
                continue
            self.records.labels(source, target).set(lag.records)
            self.seconds.labels(source, target).set(lag.seconds)
            self.up.labels(source, target).set(1)
        self.polled.set()

    def serve(self) -> SafeHTTPServer:
        """Start /metrics and /healthz (200 once the first poll is done) on a thread."""

        def healthz(request: Request) -> Reply:
            return Reply(200, b"ok\n") if self.polled.is_set() else Reply(503, b"starting\n")

        routes = {"/metrics": metrics_route(self.registry), "/healthz": healthz}
        server = SafeHTTPServer(
            "replication-lag", self.settings.http_host, self.settings.http_port, routes
        )
        server.start()
        return server

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.poll_once()
            stop.wait(self.settings.poll_interval_s)
