"""The checked-in JSON Schemas of the wire format, generated from `UsageEvent`.

Regenerate after changing the contract (a unit test fails while they are stale)::

    .venv/bin/python -m tokenops.schemas.jsonschema
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tokenops.schemas.event import MAX_TOKENS, UsageEvent
from tokenops.schemas.wire import (
    BATCH_CONTENT_TYPE,
    BATCH_TYPE,
    BATCH_VERSION,
    CLOUDEVENTS_CONTENT_TYPE,
    COLUMNS_CONTENT_TYPE,
    COLUMNS_VERSION,
    EVENT_TYPE,
    MAX_BATCH_EVENTS,
    REQUIRED_COLUMNS,
    SPECVERSION,
)

SCHEMA_DIR = Path(__file__).resolve().parent
EVENT_SCHEMA_FILE = "usage-event.v1.schema.json"
BATCH_SCHEMA_FILE = "usage-batch.v1.schema.json"
COLUMNS_SCHEMA_FILE = "usage-batch.v2.schema.json"
_BASE_ID = "https://tokenops.dev/schemas/"
_ENVELOPE = ("id", "source", "time")


def event_schema() -> dict[str, Any]:
    """One usage event as a CloudEvent (structured mode), GenAI fields in `data`."""
    model = UsageEvent.model_json_schema()
    fields = model["properties"]
    data = {k: v for k, v in fields.items() if k not in _ENVELOPE}
    data_required = ["schema_version", *(k for k in model["required"] if k not in _ENVELOPE)]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _BASE_ID + EVENT_SCHEMA_FILE,
        "title": "tokenops usage event v1",
        "description": f"Kafka value with content-type {CLOUDEVENTS_CONTENT_TYPE}; "
        "key = data.tenant_id. " + (model.get("description") or ""),
        "type": "object",
        "required": ["specversion", "type", "source", "id", "time", "data"],
        "properties": {
            "specversion": {"const": SPECVERSION},
            "type": {"const": EVENT_TYPE},
            "source": fields["source"],
            "id": fields["id"],
            "time": {**fields["time"], "description": "UTC, e.g. 2026-01-31T12:00:00.000Z"},
            "datacontenttype": {"const": "application/json"},
            "subject": {"type": "string"},
            "dataschema": {"type": "string"},
            "data": {
                "type": "object",
                "additionalProperties": False,
                "required": data_required,
                "properties": data,
            },
        },
        "patternProperties": {"^[a-z0-9]{1,20}$": {"description": "CloudEvents extension"}},
        "additionalProperties": False,
    }


def batch_schema() -> dict[str, Any]:
    """Several events of one tenant in one Kafka record."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _BASE_ID + BATCH_SCHEMA_FILE,
        "title": "tokenops usage batch v1",
        "description": f"Kafka value with content-type {BATCH_CONTENT_TYPE}; key = tenant_id. "
        "Every event is a usage event of this tenant.",
        "type": "object",
        "required": ["type", "version", "tenant_id", "events"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": BATCH_TYPE},
            "version": {"const": BATCH_VERSION},
            "tenant_id": UsageEvent.model_json_schema()["properties"]["tenant_id"],
            "events": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH_EVENTS,
                "items": {"$ref": EVENT_SCHEMA_FILE},
            },
        },
    }


def columns_schema() -> dict[str, Any]:
    """Several events of one tenant as columns: one list per field (`wire.py`)."""
    model = UsageEvent.model_json_schema()
    fields = model["properties"]
    columns: dict[str, Any] = {}
    for name, field in fields.items():
        if name in ("schema_version", "tenant_id"):
            continue
        item = {k: v for k, v in field.items() if k not in ("default", "title")}
        absent = (
            "" if name in REQUIRED_COLUMNS else f"; absent: {json.dumps(field.get('default', {}))}"
        )
        if name == "time":
            item = {"type": "string", "description": "UTC, e.g. 2026-01-31T12:00:00.000Z"}
        columns[name] = {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BATCH_EVENTS,
            "items": item,
            "description": f"{name} of each event, in order{absent}",
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _BASE_ID + COLUMNS_SCHEMA_FILE,
        "title": "tokenops usage batch v2 (columnar)",
        "description": f"Kafka value with content-type {COLUMNS_CONTENT_TYPE}; key = "
        "tenant_id. Event i holds every column's item i; all columns have the same length. "
        f"Token counts are integers from 0 to {MAX_TOKENS}; the contract's cross-field rules "
        "(cache read + creation <= input, reasoning <= output, time within the clock skew) "
        "apply per event.",
        "type": "object",
        "required": ["type", "version", "tenant_id", "schema_version", "columns"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": BATCH_TYPE},
            "version": {"const": COLUMNS_VERSION},
            "tenant_id": fields["tenant_id"],
            "schema_version": {"const": 1},
            "columns": {
                "type": "object",
                "required": list(REQUIRED_COLUMNS),
                "additionalProperties": False,
                "properties": columns,
            },
        },
    }


def rendered() -> dict[str, str]:
    """File name -> the exact text that belongs in schemas/."""
    schemas = {
        EVENT_SCHEMA_FILE: event_schema(),
        BATCH_SCHEMA_FILE: batch_schema(),
        COLUMNS_SCHEMA_FILE: columns_schema(),
    }
    return {name: json.dumps(s, indent=2, sort_keys=False) + "\n" for name, s in schemas.items()}


def main() -> None:
    for name, text in rendered().items():
        (SCHEMA_DIR / name).write_text(text)
        print(f"wrote {SCHEMA_DIR / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
