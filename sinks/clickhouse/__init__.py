"""The billing store: ClickHouse (or embedded chDB) tables, the sink that fills them, and
the reads for BI and billing. See docs/clickhouse.md and docs/bi.md.

Modules, the sink: `service` (the process), `sink` (the consume loop), `rows` and
`decoding` (records to rows), `verdicts` (the worker's dead letters as rows), `writer`
(the write boundary), `closing` (months and adjustments), `watermarks`, `metrics`
(its HTTP listener is the API's app: tokenops/api/sink_app.py). The store: `store`
(open it), `migrations` (their SQL: `schema/`), `prices`, `time_zones`, `settings`,
`errors`. The reads: `billing`, `reader`, `reconcile`, `finality`, `invoice_model`,
`invoice_html`, `parquet`, `bi_sql`, `wire`.
"""

from tokenops.sinks.clickhouse.errors import ClickHouseError, StoreBusyError
from tokenops.sinks.clickhouse.settings import ClickHouseSettings
from tokenops.sinks.clickhouse.store import ClickHouseStore, open_store

__all__ = [
    "ClickHouseError",
    "ClickHouseSettings",
    "ClickHouseStore",
    "StoreBusyError",
    "open_store",
]
