"""`tokenops api`: the HTTP door of tokenops (ingest, OTLP, quotas, usage) as one ASGI app.

Modules: `server` (the process), `app` (routes and the Host check), `ingest` (POST
events and traces), `otlp_wire`, `queries` (usage and invoices), `quotas` (the
entitlement check), `auth` and `keys` (API keys), `state`, `settings`, `errors`; and
`sink_app` with `sink_listener`: the same query routes served inside `tokenops sink
clickhouse` over its open store, with /v1/reconcile and /v1/sql.
"""
