"""One line per setting for `tokenops config show`, keyed by environment variable.

A field's own `description` is used where this table has no entry; the unit test
`test_config_show.py` fails when a setting has neither.
"""

from __future__ import annotations

DESCRIPTIONS: dict[str, str] = {
    # Kafka connection
    "TOKENOPS_KAFKA_BOOTSTRAP_SERVERS": "Kafka brokers, host:port[,host:port]; default: the local stack's Kafka port.",  # noqa: E501
    "TOKENOPS_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    "TOKENOPS_KAFKA_SASL_MECHANISM": "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    "TOKENOPS_KAFKA_SASL_USERNAME": "SASL user name.",
    "TOKENOPS_KAFKA_SASL_PASSWORD": "SASL password (secret).",
    "TOKENOPS_KAFKA_SSL_CA_LOCATION": "CA bundle that signs the brokers' certificates.",
    "TOKENOPS_KAFKA_SSL_CERTIFICATE_LOCATION": "Client certificate for mutual TLS.",
    "TOKENOPS_KAFKA_SSL_KEY_LOCATION": "Private key of the client certificate.",
    "TOKENOPS_KAFKA_SSL_KEY_PASSWORD": "Password of the private key (secret).",
    "TOKENOPS_KAFKA_CLIENT_CONFIG": "JSON object of further librdkafka properties, by their own names.",  # noqa: E501
    # Topics
    "TOKENOPS_TOPIC_USAGE": "Topic producers write usage events to.",
    "TOKENOPS_TOPIC_AGGREGATES": "Topic of the worker's window totals (compacted).",
    "TOKENOPS_TOPIC_DEAD_LETTER": "Topic of records the worker refused, with the reason.",
    "TOKENOPS_TOPIC_QUOTA_ALERTS": "Topic of quota threshold crossings.",
    "TOKENOPS_TOPIC_QUOTAS": "Topic of quota definitions (compacted).",
    "TOKENOPS_TOPIC_PARTITIONS": "Partitions of the usage topic; fixed once events flow.",
    "TOKENOPS_TOPIC_REPLICATION_FACTOR": "Replicas of every pipeline topic.",
    # Local stack
    "TOKENOPS_STACK_STATE_DIR": "Every piece of local state: Kafka, Prometheus, ClickHouse store, worker state, spool, logs.",  # noqa: E501
    "TOKENOPS_STACK_CACHE_DIR": "Downloaded Kafka jars, shared by every stack.",
    "TOKENOPS_STACK_KAFKA_PORT": "Port of the local Kafka broker; clients follow it.",
    "TOKENOPS_STACK_KAFKA_CONTROLLER_PORT": "Port of the local broker's KRaft controller.",
    "TOKENOPS_STACK_KAFKA_HEAP_MB": "Java heap of the local broker, in MiB.",
    "TOKENOPS_STACK_PROMETHEUS_PORT": "Port of the local Prometheus.",
    "TOKENOPS_STACK_ALERTMANAGER_PORT": "Port of the local Alertmanager.",
    "TOKENOPS_STACK_START_TIMEOUT_S": "How long `stack up` waits for each component.",
    # ClickHouse
    "TOKENOPS_CLICKHOUSE_URL": "http(s)://host:port of a server, or chdb:///path; default: <state_dir>/clickhouse.",  # noqa: E501
    "TOKENOPS_CLICKHOUSE_DATABASE": "Database that holds the billing tables.",
    "TOKENOPS_CLICKHOUSE_USERNAME": "ClickHouse user.",
    "TOKENOPS_CLICKHOUSE_PASSWORD": "ClickHouse password (secret).",
    "TOKENOPS_CLICKHOUSE_VERIFY_TLS": "Verify the server's TLS certificate.",
    "TOKENOPS_CLICKHOUSE_CA_CERT": "CA bundle for the server's certificate.",
    "TOKENOPS_CLICKHOUSE_CLIENT_CERT": "Client certificate for mutual TLS.",
    "TOKENOPS_CLICKHOUSE_CLIENT_KEY": "Private key of the client certificate.",
    "TOKENOPS_CLICKHOUSE_CONNECT_TIMEOUT_S": "Timeout of one connection attempt.",
    "TOKENOPS_CLICKHOUSE_BATCH_MAX_ROWS": "Rows per insert at most.",
    "TOKENOPS_CLICKHOUSE_BATCH_MAX_MS": "Longest a row waits before its batch is written.",
    "TOKENOPS_CLICKHOUSE_RAW_EVENTS": "Also store every raw event (for audits and BI).",
    "TOKENOPS_CLICKHOUSE_RAW_EVENTS_RETENTION_DAYS": "Days raw events are kept; 0 keeps forever.",
    "TOKENOPS_CLICKHOUSE_CONSUMER_GROUP": "Kafka consumer group of the ClickHouse sink.",
    "TOKENOPS_CLICKHOUSE_RETRY_INITIAL_MS": "First backoff after a failed write.",
    "TOKENOPS_CLICKHOUSE_RETRY_MAX_MS": "Longest backoff between write attempts.",
    "TOKENOPS_CLICKHOUSE_HTTP_HOST": "Address of the sink's /metrics and query endpoint.",
    "TOKENOPS_CLICKHOUSE_PRICES_FILE": "Price book loaded at start; default: deploy/prices.yaml.",
    # Prometheus sink
    "TOKENOPS_PROMETHEUS_SINK_HOST": "Address the exporter listens on.",
    "TOKENOPS_PROMETHEUS_SINK_MAX_TENANTS": "Tenant label values exported; the rest sum into tenant=other.",  # noqa: E501
    "TOKENOPS_PROMETHEUS_SINK_MAX_MODELS": "Model label values exported; the rest sum into model=other.",  # noqa: E501
    "TOKENOPS_PROMETHEUS_SINK_LAG_INTERVAL_S": "How often consumer lag is read.",
    # Worker
    "TOKENOPS_WORKER_APP_ID": "Faust app id: the consumer group and the changelog's prefix.",
    "TOKENOPS_WORKER_WINDOW_S": "Length of the tumbling windows.",
    "TOKENOPS_WORKER_ALLOWED_LATENESS_S": "How long after its end a window waits for late events.",
    "TOKENOPS_WORKER_IDLE_TIMEOUT_S": "Quiet time after which a partition's watermark advances.",
    "TOKENOPS_WORKER_DEDUP_HORIZON_S": "Event time over which duplicates are recognised.",
    "TOKENOPS_WORKER_STATE_DIR": "The worker's local state; default: <stack state_dir>/worker.",
    "TOKENOPS_WORKER_BATCH_MAX_RECORDS": "Records the worker takes per batch at most.",
    "TOKENOPS_WORKER_BATCH_MAX_BYTES": "Bytes of record values per batch at most (one fetch over).",
    "TOKENOPS_WORKER_BATCH_WITHIN_S": "Longest the worker waits to fill a batch.",
    "TOKENOPS_WORKER_SESSION_TIMEOUT_S": "Kafka group session timeout.",
    "TOKENOPS_WORKER_HEARTBEAT_INTERVAL_S": "Kafka group heartbeat interval.",
    "TOKENOPS_WORKER_HTTP_HOST": "Address of the worker's /metrics and /healthz (loopback unless set).",  # noqa: E501
    "TOKENOPS_WORKER_SIGNATURE_MODE": "off, verify-if-present or enforce (docs/security.md).",
    # Producer
    "TOKENOPS_PRODUCER_TOPIC": "Topic the producer writes to.",
    "TOKENOPS_PRODUCER_BATCH_MAX_EVENTS": "Events of one tenant per Kafka record at most.",
    "TOKENOPS_PRODUCER_LINGER_MS": "Longest a partly filled tenant batch waits (was _BATCH_LINGER_MS).",  # noqa: E501
    "TOKENOPS_PRODUCER_COMPRESSION_TYPE": "lz4, zstd or none.",
    "TOKENOPS_PRODUCER_MAX_OUTSTANDING_EVENTS": "Unacknowledged events before send() blocks.",
    "TOKENOPS_PRODUCER_BACKPRESSURE_TIMEOUT_S": "How long send() blocks before it fails.",
    "TOKENOPS_PRODUCER_DELIVERY_TIMEOUT_MS": "Time to deliver a record before it is spooled.",
    "TOKENOPS_PRODUCER_CLOSE_TIMEOUT_S": "Time close() waits before spooling the rest.",
    "TOKENOPS_PRODUCER_SPOOL_DIR": "Records not delivered yet; default: <stack state_dir>/producer-spool.",  # noqa: E501
    "TOKENOPS_PRODUCER_MAX_FUTURE_SKEW_S": "How far in the future an event's time may be.",
    "TOKENOPS_PRODUCER_CLIENT_CONFIG": "JSON object of librdkafka producer properties.",
    "TOKENOPS_PRODUCER_SIGNING_KEY_ID": "Key id of this node's signing key.",
    "TOKENOPS_PRODUCER_SIGNING_KEY": "The signing secret (secret).",
    "TOKENOPS_PRODUCER_SIGNING_KEY_FILE": "File holding the signing secret.",
    # Logging
    "TOKENOPS_LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR.",
    "TOKENOPS_LOG_FORMAT": "text, or json for one JSON object per line.",
    "TOKENOPS_LOG_PROGRESS_EVERY_S": "How often the worker and the sinks log a progress line.",
}
