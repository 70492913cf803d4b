"""Alertmanager pointed at a local webhook that records every notification it posts."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tokenops.paths import deploy_dir
from tokenops.settings import StackSettings
from tokenops.stack.alerting import AlertmanagerServer
from tokenops.stack.process import free_port


class AlertWebhook:
    """A tiny Alertmanager webhook receiver: remembers (arrival time, status, labels)."""

    def __init__(self) -> None:
        self.received: list[tuple[float, str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                for alert in body["alerts"]:
                    outer.received.append((time.time(), alert["status"], alert["labels"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"

    def firing(self, alertname: str, tenant: str, threshold: int = 0) -> list[float]:
        """Arrivals of a firing alert; `threshold` (a threshold_pct) narrows to one crossing."""
        return [
            at
            for at, status, labels in self.received
            if status == "firing"
            and labels["alertname"] == alertname
            and labels.get("tenant") == tenant
            and threshold in (0, int(labels.get("threshold_pct", 0)))
        ]

    def first_firing(self) -> dict[str, float]:
        """Tenant -> arrival of its first firing alert, whichever it was."""
        first: dict[str, float] = {}
        for at, status, labels in list(self.received):
            if status == "firing" and labels.get("tenant"):
                first.setdefault(labels["tenant"], at)
        return first

    def close(self) -> None:
        self.server.shutdown()


class WebhookAlertmanager(AlertmanagerServer):
    """The checked-in routes and inhibitions, every receiver posting to `webhook` only (the
    Slack and PagerDuty examples need secrets and the internet); `route` overrides timings."""

    def __init__(
        self, settings: StackSettings, webhook: str, route: dict[str, str] | None = None
    ) -> None:
        super().__init__(settings)
        self.webhook, self.route = webhook, route or {}

    def config_path(self) -> Path:
        config = yaml.safe_load((deploy_dir() / "alertmanager" / "alertmanager.yml").read_text())
        config["route"].update(self.route)
        config["receivers"] = [
            {"name": receiver["name"], "webhook_configs": [{"url": self.webhook}]}
            for receiver in config["receivers"]
        ]
        path = self.settings.state_dir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config))
        return path
