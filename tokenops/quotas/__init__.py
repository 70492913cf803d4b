"""Quotas: definitions (book), their Kafka topic and alert replay, and the evaluator with its plan.

Shared by the worker (streams/) and the sinks: both import this package, neither imports
the other. It imports only tokenops core and tokenops.schemas.
"""
