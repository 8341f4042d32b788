"""Local settings that survive restarts: ``<state>/settings.env``, written once.

The first start generates an API key for ``/v1`` and the system key of the durable management
API, so nothing guessable (like a fixed ``dev-key``) guards the local service, and the admin CLI
keeps working across restarts. The file is ``KEY=VALUE`` lines, mode 0600, yours to edit.

Its values are defaults: a variable set in the environment wins, *even when set to the empty
string*. So ``FOUNDRY_SERVICE_API_KEYS=`` (explicitly empty) refuses every ``/v1`` call, and
only an unset variable gets the file's key. Keys are never printed: the file's path is.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import MutableMapping
from pathlib import Path

API_KEYS = "FOUNDRY_SERVICE_API_KEYS"
SYSTEM_KEY = "FOUNDRY_DEVHOST_SYSTEM_KEY"
HEADER = (
    "# Local settings for the dev server (scripts/run-local.sh), generated once.\n"
    "# Values here apply only to variables not set in the environment.\n"
)


def ensure_settings_file(path: Path) -> bool:
    """Create the file with fresh keys unless it exists. True if it was created now."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = HEADER + "".join(
        f"{name}={secrets.token_urlsafe(32)}\n" for name in (API_KEYS, SYSTEM_KEY)
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        out.write(body)
    return True


def read_settings_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def apply_defaults(env: MutableMapping[str, str], values: dict[str, str]) -> list[str]:
    """Set each value whose variable is unset in ``env``. Returns the names that were set."""
    applied = []
    for name, value in values.items():
        if name not in env:
            env[name] = value
            applied.append(name)
    return applied


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by this user only (it may hold keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)
