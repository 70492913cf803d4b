"""Keeping secrets out of output: which setting names hold secrets, and URL passwords.

`SecretStr` settings print as '**********' on their own; these helpers cover the rest:
pass-through maps (`client_config`) whose keys name a secret, and `user:password@`
inside URLs. Used by `tokenops config show`, settings errors and connection errors.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "**********"
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_SECRET_NAME = re.compile(r"password|passwd|secret|token|credential|private|jaas", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True for setting or property names that hold secrets (`sasl.password`, ...)."""
    return _SECRET_NAME.search(name) is not None


def redact_url(text: str) -> str:
    """`text` with the password of every `scheme://user:password@` in it masked."""
    return _URL_PASSWORD.sub(rf"\1{MASK}@", text)


def masked(name: str, value: Any, *, as_repr: bool = False) -> str:
    """`value` as text for display (`str`, or `repr` with `as_repr`), with secrets masked:
    the whole value if `name` names a secret, else secret keys of a map and URL passwords."""
    if is_secret_name(name):
        return MASK
    if isinstance(value, dict):
        value = {k: MASK if is_secret_name(str(k)) else v for k, v in value.items()}
    elif isinstance(value, str) and "@" in value and "://" in value:
        value = redact_url(value)
    return repr(value) if as_repr else str(value)
