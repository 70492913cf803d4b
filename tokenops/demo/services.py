"""The demo's pipeline processes: the worker, both sinks and the HTTP API, with
demo-sized windows."""

from __future__ import annotations

import time

from tokenops.demo.place import DemoPlace
from tokenops.errors import TokenopsError
from tokenops.settings import TopicSettings
from tokenops.stack.services import PipelineService


def pipeline_services(
    place: DemoPlace, *, window_s: int, lateness_s: float, idle_s: float
) -> list[PipelineService]:
    """The worker, the ClickHouse sink, the Prometheus sink and `tokenops api serve`, on
    the demo's ports and with its state directory and store. The API only ingests: the
    demo reads usage from the store itself and quotas from Alertmanager."""
    common = place.service_env()
    stack = place.stack
    return [
        PipelineService(
            stack,
            "worker",
            ["worker"],
            {
                **common,
                "TOKENOPS_WORKER_WINDOW_S": str(window_s),
                "TOKENOPS_WORKER_ALLOWED_LATENESS_S": str(lateness_s),
                "TOKENOPS_WORKER_IDLE_TIMEOUT_S": str(idle_s),
            },
            place.worker_port,
        ),
        PipelineService(
            stack,
            "sink-clickhouse",
            ["sink", "clickhouse"],
            {**common, "TOKENOPS_CLICKHOUSE_BATCH_MAX_MS": "500"},
            place.clickhouse_sink_port,
        ),
        PipelineService(
            stack,
            "sink-prometheus",
            ["sink", "prometheus"],
            {**common, "TOKENOPS_PROMETHEUS_SINK_HOST": "127.0.0.1"},
            place.prometheus_sink_port,
        ),
        PipelineService(
            stack,
            "api",
            ["api", "serve"],
            {
                **common,
                "TOKENOPS_API_QUOTAS": "false",
                "TOKENOPS_API_QUERIES": "false",
                "TOKENOPS_PRODUCER_TOPIC": TopicSettings().usage,  # where the simulator sends
                "TOKENOPS_PRODUCER_SPOOL_DIR": str(stack.state_dir / "api-spool"),
            },
            place.api_port,
        ),
    ]


def wait_until_serving(services: list[PipelineService], timeout_s: float = 120.0) -> None:
    """Block until every service answers on /metrics, or name the one that did not."""
    deadline = time.monotonic() + timeout_s
    pending = list(services)
    while pending:
        for service in list(pending):
            if not service.running:
                raise TokenopsError(
                    f"{service.name} exited during start-up:\n{service.process.log_tail()}",
                    hint=f"its log is {service.process.log_file}",
                )
            if service.scrape():
                pending.remove(service)
        if pending and time.monotonic() > deadline:
            names = ", ".join(s.name for s in pending)
            raise TokenopsError(f"{names} did not start serving within {timeout_s:.0f} s")
        time.sleep(0.3)
