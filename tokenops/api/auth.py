"""Who is calling: the API key of a request, and whether it may touch a tenant.

A key comes as `Authorization: Bearer <key>` (or `X-API-Key: <key>`). No key or an
unknown one is 401; a tenant key used for another tenant is 403.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import Scope

from tokenops.api.errors import ApiError
from tokenops.api.keys import ApiKey, KeyLookup

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tokenops"'}


def headers_of(scope: Scope) -> dict[str, str]:
    """The headers of a request's ASGI `scope` as one plain dict, names lower-case (ASGI
    sends them so), built once: cheaper than the Starlette `Headers` lookups a hot route
    makes."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


def authenticate(headers: Mapping[str, str], store: KeyLookup) -> ApiKey:
    """The key of a request with these `headers` (`headers_of`, or `request.headers`)."""
    header = headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    key = token.strip() if scheme.lower() == "bearer" else headers.get("x-api-key", "")
    if not key:
        raise ApiError(401, "an API key is required", headers=_CHALLENGE)
    found = store.lookup(key)
    if found is None:
        raise ApiError(401, "unknown API key", headers=_CHALLENGE)
    return found


def require_tenant(key: ApiKey, tenant: str) -> None:
    if not key.may_access(tenant):
        raise ApiError(403, f"this API key may not access tenant {tenant!r}")


def require_admin(key: ApiKey) -> None:
    if not key.admin:
        raise ApiError(403, "this needs an admin API key")
