"""Keeping secrets out of output: the one masking rule for `config show`, errors and logs.

`mask_secrets(value, name)` returns `value` with every secret in it replaced by `MASK`,
however deep: a `SecretStr`, the value of any key whose name says it holds a secret
(`sasl.password`, `ssl.key.pem`, `clientSecret`, `ssl.keystore.key`, ...) in a map at
any depth or in a list, a `name=value` (or `name: value`) pair inside a string, such as
`sasl.oauthbearer.config="clientId=x clientSecret=y"`, and the password of a
`scheme://user:password@` URL. `masked()` is the same rule, as text for display.
`shared_file_problem()` refuses files of secrets that other users can read.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretBytes, SecretStr

MASK = "**********"
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
# `key.pem` (a PEM private key given inline) and names ending in `key` (`ssl.keystore.key`,
# `signing_key`) hold key material; `ssl.key.location` (a path) does not end in `key`.
_SECRET_NAME = re.compile(
    r"password|passwd|secret|token|credential|private|jaas|key\.pem|(?:^|[._-])key$",
    re.IGNORECASE,
)
# `name=value` / `name: value` inside a string: the value runs to the next separator, or
# is quoted. Masked only when `name` names a secret.
_PAIR = re.compile(
    r"""(?P<name>[A-Za-z0-9_.\-]+)(?P<sep>["']?\s*[=:]\s*)"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s,;&"']*)"""
)


def is_secret_name(name: str) -> bool:
    """True for setting or property names that hold secrets (`sasl.password`, ...)."""
    return _SECRET_NAME.search(name) is not None


def redact_url(text: str) -> str:
    """`text` with the password of every `scheme://user:password@` in it masked."""
    return _URL_PASSWORD.sub(rf"\1{MASK}@", text)


def _mask_pair(match: re.Match[str]) -> str:
    if not is_secret_name(match["name"]) or not match["value"]:
        return match[0]
    return f"{match['name']}{match['sep']}{MASK}"


def mask_secrets(value: Any, name: str = "") -> Any:
    """`value` with every secret in it masked; `name` is the setting or key it sits under.

    Maps and lists are walked to any depth (a copy is returned); the shape of the value
    is kept, so the result prints like the original.
    """
    if isinstance(value, SecretStr | SecretBytes) or (value and is_secret_name(name)):
        return MASK
    if isinstance(value, Mapping):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return _PAIR.sub(_mask_pair, redact_url(value))
    return value


def masked(name: str, value: Any, *, as_repr: bool = False) -> str:
    """`mask_secrets(value, name)` as text for display (`str`, or `repr` with `as_repr`)."""
    shown = mask_secrets(value, name)
    return repr(shown) if as_repr else str(shown)


def shared_file_problem(path: Path) -> str | None:
    """Why the file of secrets at `path` must not be used, or None: group or others may
    read or write it (another user could sign as this node, or add a key). Follows
    symlinks, so a mounted secret is judged by the file it points to."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return None
    return f"holds secrets but is open to group or others (mode {mode:04o}); run: chmod 600 {path}"
