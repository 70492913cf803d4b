"""`tokenops demo`: the whole pipeline on the local stack, checked against the ledger.

`DemoRun` starts the local stack, the worker and both sinks (as real processes), drives
the fleet simulator through them, waits until the pipeline has caught up on its own
signals (consumer lag, closed windows), then reads what the pipeline produced:
ClickHouse for usage and invoices, Alertmanager for the quota alerts. The simulator's
ledger is used only to check those numbers, never to print them.

Modules: `run` (one run), `place` (its directory and ports), `services` (the pipeline
processes), `day` (runs within one UTC day), `doors` (the HTTP doors), `quotas`,
`observe` (live figures), `results` and `alerts` (what is read back and checked).
"""

from tokenops.demo.run import DemoConfig, DemoResult, DemoRun

__all__ = ["DemoConfig", "DemoResult", "DemoRun"]
