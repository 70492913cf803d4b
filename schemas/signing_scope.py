"""What one signing key may sign for: its sources (node identities) and tenants.

A valid signature proves which key signed a record; the key's scope decides whether
that key may speak for the events in it. Without a scope, node A's key could sign an
event naming node B's `source` and B's next `id`, and B's real event would then be
dropped as a duplicate (`source` + `id` is the deduplication key).

Rules, per event of a signed record (fnmatch globs, case-sensitive, `*` also matches
`/`): `source` must match one of the key's `sources`; `node_id`, when set, must match
one of them too (a node names itself by URI in `source` and by id in `node_id`, so the
list holds both, e.g. `["//node/us-east-1/gpu-17", "gpu-17"]`); `tenant_id` must match
one of the key's `tenants` (default `["*"]`, any tenant).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import translate

from tokenops.schemas.columns import EventColumns
from tokenops.schemas.errors import InvalidEventError

MIN_SECRET_BYTES = 16
SCOPE_FIELD = "signature_scope"  # the dead-letter field of an event outside its key's scope


def _globs(globs: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{translate(glob)})" for glob in globs))


@dataclass(frozen=True, repr=False)
class SigningKey:
    """A keyring entry: the secret, and the `sources` and `tenants` it may sign for."""

    secret: bytes
    sources: tuple[str, ...]
    tenants: tuple[str, ...] = ("*",)
    _source: re.Pattern[str] = field(init=False, compare=False)
    _tenant: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(f"secret: under {MIN_SECRET_BYTES} bytes")
        for name in ("sources", "tenants"):
            globs = getattr(self, name)
            if not globs or not all(isinstance(g, str) and g for g in globs):
                raise ValueError(f"{name}: must be a non-empty list of non-empty globs")
        object.__setattr__(self, "_source", _globs(self.sources))
        object.__setattr__(self, "_tenant", _globs(self.tenants))

    def __repr__(self) -> str:  # never the secret
        return f"SigningKey(sources={list(self.sources)}, tenants={list(self.tenants)})"

    def scope_error(self, key_id: str, columns: EventColumns) -> InvalidEventError | None:
        """The error for the first value outside this key's scope; None if all are in."""
        n = len(columns)
        checks = (
            ("source", "sources", self._source, columns.source),
            ("node_id", "sources", self._source, columns.node_id),
            ("tenant_id", "tenants", self._tenant, [columns.tenant_id] * n),
        )
        for name, scope, pattern, values in checks:
            # a batch repeats a few values many times: match each distinct value once
            bad = next((v for v in set(values) if v is not None and not pattern.match(v)), None)
            if bad is None:
                continue
            index = values.index(bad)
            reason = f"out_of_scope: {name} {bad!r} is outside the {scope} of kid {key_id!r}"
            return InvalidEventError(SCOPE_FIELD, bad, reason, index=index if n > 1 else None)
        return None
