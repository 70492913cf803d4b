"""0004: the effective-dated price sets, the billable quantities per token type and the
invoice lines."""

SQL = """\
-- Effective-dated prices per model and token type, per million tokens, loaded from
-- deploy/prices.yaml. Each load that changes anything inserts a complete new price set
-- (`price_set`, the load time); `current_prices` is the latest set, older sets stay for
-- audit. `effective_from` is on an hour boundary, so hourly usage prices exactly.
CREATE TABLE IF NOT EXISTS prices
(
    price_set DateTime64(6, 'UTC'),
    model LowCardinality(String),
    token_type LowCardinality(String),
    effective_from DateTime('UTC'),
    currency LowCardinality(String),
    price_per_million Decimal(38, 9),
    source_digest String
)
ENGINE = MergeTree
ORDER BY (price_set, model, token_type, effective_from);

CREATE VIEW IF NOT EXISTS current_prices AS
SELECT model, token_type, effective_from, currency, price_per_million
FROM prices
WHERE price_set = (SELECT max(price_set) FROM prices);

-- Billable quantities per token type. Input counts include cached tokens and output
-- counts include reasoning tokens (OpenTelemetry GenAI), so the `input_tokens` and
-- `output_tokens` lines bill only the uncached input and the non-reasoning output; each
-- token is billed exactly once.
CREATE VIEW IF NOT EXISTS billable_hourly AS
SELECT
    tenant_id,
    model,
    hour,
    tupleElement(line, 1) AS token_type,
    tupleElement(line, 2) AS quantity
FROM hourly_usage
ARRAY JOIN [
    ('input_tokens', toUInt64(input_tokens - cache_read_input_tokens - cache_creation_input_tokens)),
    ('cache_read_input_tokens', cache_read_input_tokens),
    ('cache_creation_input_tokens', cache_creation_input_tokens),
    ('output_tokens', toUInt64(output_tokens - reasoning_output_tokens)),
    ('reasoning_output_tokens', reasoning_output_tokens)
] AS line;

-- One line per tenant, month, model, token type and unit price (a price change inside a
-- month gives two lines). `priced` = 0 marks usage without a price in effect.
-- `amount` is exact (Decimal, 15 places); invoices round each line to cents.
CREATE VIEW IF NOT EXISTS invoice_lines AS
SELECT
    b.tenant_id AS tenant_id,
    toStartOfMonth(b.hour) AS month,
    b.model AS model,
    b.token_type AS token_type,
    p.currency AS currency,
    p.price_per_million AS unit_price_per_million,
    p.model != '' AS priced,
    sum(b.quantity) AS quantity,
    sum(toDecimal128(b.quantity, 0) * toDecimal128(p.price_per_million, 15)) / 1000000 AS amount
FROM billable_hourly AS b
ASOF LEFT JOIN current_prices AS p
    ON b.model = p.model AND b.token_type = p.token_type AND b.hour >= p.effective_from
WHERE b.quantity > 0
GROUP BY tenant_id, month, model, token_type, currency, unit_price_per_million, priced;
"""
