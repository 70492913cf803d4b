"""`tokenops api`: the HTTP door of tokenops (ingest, OTLP, quotas, usage) as one ASGI app."""
