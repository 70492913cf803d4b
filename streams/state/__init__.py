"""A worker partition's durable state: what one batch changes (`delta`), where it is kept
(`store`, RocksDB with the next input offset) and how it is rebuilt and claimed from the
changelog topic (`changelog`).

These modules import the contract (`tokenops.schemas`), `windows`, `errors` and `publisher`,
never the worker's batch loop (`partition`, `worker`), which imports them."""
