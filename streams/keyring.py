"""The worker's keyring: signing keys with their scopes, from a file and/or a setting.

Both hold the same mapping, key id -> entry, as YAML or JSON::

    gpu-17-2026-11:
      secret: "Qm9..."                                   # at least 16 bytes
      sources: ["//node/us-east-1/gpu-17", "gpu-17"]     # source and node_id globs
      tenants: ["acme", "globex-*"]                      # optional: any tenant

Every problem is reported at once in one `ConfigError`, naming the setting, the key id
and the field, never a secret: not the value, not the line of a malformed file (its
line and column only), not the name of an unknown field (a misplaced secret may be one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from tokenops.errors import ConfigError
from tokenops.schemas.signing import Keyring, SigningKey
from tokenops.secrets import shared_file_problem
from tokenops.streams.settings import WorkerSettings

FILE_SETTING = "TOKENOPS_WORKER_SIGNING_KEYRING_FILE"
KEYS_SETTING = "TOKENOPS_WORKER_SIGNING_KEYS"
ENTRY_FORM = (
    "write each key as <key id>: {secret: <secret>, sources: <list of source and node_id "
    "globs>, tenants: <list of tenant globs, optional>} (docs/security.md)"
)
_FIELDS = frozenset({"secret", "sources", "tenants"})


def load_keyring(settings: WorkerSettings) -> Keyring:
    """The keyring file's keys joined with `signing_keys` (which win on a shared id)."""
    keys: dict[str, SigningKey] = {}
    problems: list[str] = []
    path = settings.signing_keyring_file
    if path is not None:
        data = _read_file(path, problems)
        if data is not None:
            keys.update(_entries(f"{FILE_SETTING}={path}", data, problems))
    if settings.signing_keys is not None:
        text = settings.signing_keys.get_secret_value()
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:  # its message quotes the text: position only
            problems.append(f"{KEYS_SETTING}: not JSON (line {exc.lineno}, column {exc.colno})")
        else:
            keys.update(_entries(KEYS_SETTING, data, problems))
    if not problems:
        try:
            return Keyring(keys)
        except ValueError as exc:
            problems.append(f"signing keyring: {exc}")
    raise ConfigError(problems)


def _read_file(path: Path, problems: list[str]) -> object | None:
    where = f"{FILE_SETTING}={path}"
    try:
        refused = shared_file_problem(path)
        if refused is not None:
            problems.append(f"{where}: {refused}")
            return None
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(f"{where}: cannot read: {exc.strerror}")
        return None
    except UnicodeDecodeError as exc:
        problems.append(f"{where}: not UTF-8 text (byte {exc.start})")
        return None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:  # its text quotes the offending line, secret included
        mark = getattr(exc, "problem_mark", None)
        at = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
        problems.append(f"{where}: not valid YAML{at}")
        return None


def _entries(where: str, data: object, problems: list[str]) -> dict[str, SigningKey]:
    if not isinstance(data, dict):
        problems.append(f"{where}: must map key ids to key entries; {ENTRY_FORM}")
        return {}
    keys: dict[str, SigningKey] = {}
    for key_id, entry in data.items():
        named = f"{where}: key id {str(key_id)!r}"
        if not isinstance(entry, dict):
            # the old form, `key id: secret`, would let the key sign for every node
            problems.append(f"{named}: a key needs a scope, not a bare secret; {ENTRY_FORM}")
            continue
        key = _key(named, entry, problems)
        if key is not None:
            keys[str(key_id)] = key
    return keys


def _key(named: str, entry: dict[Any, Any], problems: list[str]) -> SigningKey | None:
    found = len(problems)
    if set(entry) - _FIELDS:
        problems.append(f"{named}: has fields other than secret, sources, tenants")
    secret = entry.get("secret")
    if not isinstance(secret, str):
        problems.append(f"{named}: secret: required, a string")
    lists = {name: entry[name] for name in ("sources", "tenants") if name in entry}
    if "sources" not in lists:
        problems.append(f"{named}: sources: required, the sources and node ids it signs for")
    for name, globs in lists.items():
        if not isinstance(globs, list) or not all(isinstance(g, str) for g in globs):
            problems.append(f"{named}: {name}: must be a list of globs")
    if len(problems) > found:
        return None
    try:
        return SigningKey(str(secret).encode(), **{k: tuple(v) for k, v in lists.items()})
    except ValueError as exc:  # names the field only
        problems.append(f"{named}: {exc}")
        return None
