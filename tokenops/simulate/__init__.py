"""Test tooling for the pipeline: the fleet simulator, its ledger of expected totals,
the malformed-record maker and topic readback.

Used by `tokenops simulate`, the demo, the tests and the benchmarks; it drives the SDK
(`tokenops.producers`) and is not part of it.

Modules: `simulator`, `ledger`, `malformed`, `readback`.
"""
