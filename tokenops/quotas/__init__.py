"""Quotas: definitions (the book), their topic and alert replay, and their evaluation.

Shared by the worker (streams/) and the sinks: both import this package, neither imports
the other. It imports only tokenops core and tokenops.schemas.

Modules: `book` (the quotas in force, and the quota file), `topic` (the compacted quota
topic), `replay` (alerts read back after a restart), `usage` (what tokens add to a
quota, in one exact unit: the only place it is computed), `evaluator` (a partition's
quota usage and crossings), `counter` (one quota on one partition, with its cursor),
`cells` (a partition's usage cells and their expiry), `errors`.
"""
