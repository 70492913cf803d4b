"""One demo run: stack, pipeline processes, simulated fleet, catch-up, results, checks."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from tokenops.api.keys import new_key
from tokenops.demo.alerts import fired
from tokenops.demo.day import wait_for_one_day
from tokenops.demo.doors import DoorTraffic, send_cloudevents, send_spans
from tokenops.demo.observe import (
    Progress,
    alerts_firing,
    observe,
    pipeline_lag,
    quota_alerts_published,
)
from tokenops.demo.place import demo_place
from tokenops.demo.quotas import demo_quotas
from tokenops.demo.services import pipeline_services, wait_until_serving
from tokenops.errors import TokenopsError
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.quotas.topic import publish_quotas
from tokenops.schemas.quota import QuotaDefinition
from tokenops.settings import StackSettings, TopicSettings
from tokenops.simulate.ledger import Ledger
from tokenops.simulate.simulator import SimulationConfig, Simulator
from tokenops.sinks.clickhouse.settings import ClickHouseSettings
from tokenops.stack import LocalStack
from tokenops.stack.services import PipelineService

# The demo's traffic: a minute of 20,000 records/s from 50 tenants, with duplicates, late
# records (beyond the lateness: they arrive after their window closed) and malformed ones.
DEMO_TRAFFIC = SimulationConfig(
    tenants=50,
    rate=20_000.0,
    duration_s=60.0,
    seed=7,
    duplicate_share=0.01,
    late_share=0.002,
    late_by_s=8.0,
    malformed_share=0.0005,
)


@dataclass(frozen=True)
class DemoConfig:
    traffic: SimulationConfig = DEMO_TRAFFIC  # the tenant prefix is set per run
    window_s: int = 10
    lateness_s: float = 5.0
    idle_s: float = 3.0
    # Shares of the simulator's records also sent through the API, on their own tenants
    http_share: float = 0.02
    otlp_share: float = 0.005
    catch_up_timeout_s: float = 300.0
    alert_timeout_s: float = 120.0


@dataclass
class DemoResult:
    run_id: str
    tenant_prefix: str
    started: datetime
    ended: datetime
    ledger: Ledger
    progress: Progress
    quotas: list[QuotaDefinition]
    alerts: list[dict[str, str]] = field(default_factory=list)
    doors: DoorTraffic = field(default_factory=DoorTraffic)


class DemoRun:
    """Drives one run; `on_progress` is called about twice a second with live figures."""

    def __init__(self, config: DemoConfig, user_stack: StackSettings) -> None:
        """`user_stack` is the user's stack: the demo runs beside it (`demo/place.py`)."""
        self.config = config
        self.place = demo_place(user_stack)
        self.stack = LocalStack(
            self.place.stack, clickhouse=ClickHouseSettings(url=self.place.clickhouse_url)
        )
        self.topics = TopicSettings()
        self.run_id = uuid.uuid4().hex[:4]
        self.tenant_prefix = f"{self.run_id}-tenant-"
        self.services: list[PipelineService] = []
        self.api_key = ""
        self.simulation = replace(config.traffic, tenant_prefix=self.tenant_prefix)
        self.quotas = demo_quotas(self.simulation)

    def start(self) -> None:
        """Bring the stack and the worker and sinks up (each only if not yet running)."""
        self.stack.up()
        # An admin key for this run's HTTP and OTLP traffic (the file is written 0600)
        self.api_key = new_key(self.place.api_keys_file, None)[1]
        cfg = self.config
        self.services = pipeline_services(
            self.place,
            window_s=cfg.window_s,
            lateness_s=cfg.lateness_s,
            idle_s=cfg.idle_s,
        )
        for service in self.services:
            service.start()
        wait_until_serving(self.services)

    def day_span(self) -> tuple[float, float]:
        """(before_s, after_s) around the start that must fall in one UTC day: the
        quotas are daily, so the run's events (late ones included) and the time to see
        their alerts must not straddle midnight, or the ledger's alerts would not hold."""
        traffic = self.simulation
        return traffic.late_by_s + 60, traffic.duration_s + self.config.catch_up_timeout_s + 120

    def run(self, on_progress: Callable[[Progress], None]) -> DemoResult:
        simulation = self.simulation
        kafka = self.stack.kafka_settings
        wait_for_one_day(*self.day_span())
        publish_quotas(kafka, self.topics, self.quotas)
        started = datetime.now(UTC)
        progress = Progress(target=simulation.total_records)
        ledger_box: list[Ledger] = []
        failure: list[BaseException] = []
        doors = DoorTraffic()

        def simulate() -> None:
            settings = ProducerSettings(
                topic=self.topics.usage, spool_dir=self.stack.settings.state_dir / "spool"
            )
            try:
                with UsageProducer(kafka, settings) as producer:
                    ledger = Simulator(simulation).run(producer, progress=progress.sent)
                doors.sent["sdk"] = ledger.unique_events
                self._send_through_api(ledger, doors)
                ledger_box.append(ledger)
            except BaseException as exc:  # surfaced in the main thread below
                failure.append(exc)

        thread = threading.Thread(target=simulate, name="simulator", daemon=True)
        thread.start()
        while thread.is_alive():
            observe(progress, self.services, self.stack.alertmanager.url, self.tenant_prefix)
            on_progress(progress)
            time.sleep(0.5)
        if failure:
            raise TokenopsError(f"the simulator failed: {failure[0]}") from failure[0]
        ledger = ledger_box[0]
        progress.events_expected = ledger.unique_events + len(ledger.duplicates)
        self._catch_up(progress, on_progress)
        alerts = self._settle_alerts(progress, on_progress)
        return DemoResult(
            self.run_id,
            self.tenant_prefix,
            started,
            datetime.now(UTC),
            ledger,
            progress,
            self.quotas,
            alerts,
            doors,
        )

    def _send_through_api(self, ledger: Ledger, doors: DoorTraffic) -> None:
        """Send the API's share: CloudEvents batches, then OTLP spans unless the
        OpenTelemetry SDK (a dev extra) is missing."""
        url, records = f"http://127.0.0.1:{self.place.api_port}", self.simulation.total_records
        prefix, cfg = self.tenant_prefix, self.config
        count = round(records * cfg.http_share)
        doors.sent["http"] = send_cloudevents(url, self.api_key, prefix, count, ledger)
        try:
            count = round(records * cfg.otlp_share)
            doors.sent["otlp"] = send_spans(url, self.api_key, prefix, count, ledger)
        except ImportError as missing:
            package = missing.name or "opentelemetry-sdk"
            doors.otlp_skipped = (
                f"OTLP skipped: {package} is not installed (pip install 'tokenops[dev]')"
            )

    def _catch_up(self, progress: Progress, on_progress: Callable[[Progress], None]) -> None:
        """Wait until the worker saw every event, closed every window, and the sink is level."""
        deadline = time.monotonic() + self.config.catch_up_timeout_s
        kafka = self.stack.kafka_settings
        group = ClickHouseSettings().consumer_group
        sink_topics = [self.topics.aggregates, self.topics.usage]
        while True:
            observe(progress, self.services, self.stack.alertmanager.url, self.tenant_prefix)
            on_progress(progress)
            worker_done = progress.events_seen >= progress.events_expected and (
                progress.open_windows == 0
            )
            if worker_done and pipeline_lag(kafka, group, sink_topics) == 0:
                return
            if time.monotonic() > deadline:
                raise TokenopsError(
                    f"the pipeline did not catch up within {self.config.catch_up_timeout_s:.0f} s",
                    hint="see the logs under " + str(self.stack.settings.state_dir / "logs"),
                )
            time.sleep(0.5)

    def _settle_alerts(
        self, progress: Progress, on_progress: Callable[[Progress], None]
    ) -> list[dict[str, str]]:
        """Wait until Alertmanager holds the alerts the worker's crossings call for.

        The quota-alerts topic says which crossings happened; Prometheus needs a scrape
        and an evaluation to turn them into alerts. Whatever is there at the deadline is
        what the demo reports.
        """
        kafka = self.stack.kafka_settings
        wanted = quota_alerts_published(kafka, self.topics.quota_alerts, self.tenant_prefix)
        deadline = time.monotonic() + self.config.alert_timeout_s
        while True:
            current = alerts_firing(self.stack.alertmanager.url, self.tenant_prefix)
            progress.alerts = len(current)
            on_progress(progress)
            if fired(current) >= wanted or time.monotonic() > deadline:
                return current
            time.sleep(1)

    def stop(self) -> None:
        """Stop the demo's processes and its stack; the user's stack is never touched."""
        for service in reversed(self.services):
            service.stop()
        self.stack.down()

    @property
    def log_dir(self) -> Path:
        return self.stack.settings.state_dir / "logs"
