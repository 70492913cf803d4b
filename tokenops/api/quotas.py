"""GET /v1/quotas/{tenant}: the entitlement check a gateway calls before serving.

Answers from memory: the Prometheus sink's state (`ExporterState`), fed in this process
by the sink's own consumer of the quota, aggregates and quota-alert topics, so the
usage is the worker's closed windows plus its quota alerts, exactly what the quota
gauges show. That consumer's /metrics listener binds loopback on a free port and is
not used. Until it has caught up with its topics, the check answers 503.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tokenops.api.auth import authenticate, require_tenant
from tokenops.api.errors import ApiError
from tokenops.api.state import ApiState
from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.sinks.prometheus.settings import PrometheusSinkSettings
from tokenops.sinks.prometheus.sink import PrometheusSink


class QuotaView:
    """The current period's usage of every quota, per tenant; thread-safe."""

    def __init__(self, kafka: KafkaSettings, topics: TopicSettings) -> None:
        settings = PrometheusSinkSettings(host="127.0.0.1", port=0)
        self.sink = PrometheusSink(kafka, topics, settings, registry=CollectorRegistry())

    def start(self) -> None:
        self.sink.start()

    def stop(self) -> None:
        self.sink.stop()

    @property
    def ready(self) -> bool:
        return self.sink.ready.is_set()

    def check(self, tenant: str, now_ms: int) -> dict[str, Any]:
        with self.sink.lock:
            samples = [s for s in self.sink.state.quota_samples(now_ms) if s.tenant == tenant]
        quotas = []
        for sample in sorted(samples, key=lambda s: s.quota):
            usage = sample.usage_ratio * sample.limit
            quotas.append(
                {
                    "name": sample.quota,
                    "period": sample.period,
                    "allowed": usage < sample.limit,
                    "usage": usage,
                    "limit": sample.limit,
                    "remaining": max(0.0, sample.limit - usage),
                    "resets_at": _iso(sample.period_end_ms),
                }
            )
        return {
            "tenant": tenant,
            "allowed": all(q["allowed"] for q in quotas),
            "as_of": _iso(now_ms),
            "quotas": quotas,
        }


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


async def get_quota(request: Request) -> Response:
    state: ApiState = request.app.state.api
    key = authenticate(request.headers, state.keys)
    tenant = request.path_params["tenant"]
    require_tenant(key, tenant)
    view = state.quotas
    if view is None:
        raise ApiError(404, "quota checks are not enabled on this server")
    if not view.ready:
        retry = {"Retry-After": str(state.settings.retry_after_s)}
        raise ApiError(503, "quota state is not loaded yet", headers=retry)
    return JSONResponse(view.check(tenant, int(time.time() * 1000)))
