"""Local settings: generated once, private, and only defaults: an explicitly empty variable
stays empty (every /v1 call refused), only an unset one gets the file's key."""

from __future__ import annotations

import stat
from pathlib import Path

from devhost.local_settings import (
    API_KEYS,
    SYSTEM_KEY,
    apply_defaults,
    ensure_settings_file,
    read_settings_file,
    write_private,
)


def test_the_file_is_generated_once_with_fresh_private_keys(tmp_path: Path) -> None:
    path = tmp_path / "state" / "settings.env"
    assert ensure_settings_file(path) is True
    first = read_settings_file(path)
    assert set(first) == {API_KEYS, SYSTEM_KEY}
    assert len(first[API_KEYS]) >= 40 and first[API_KEYS] != first[SYSTEM_KEY]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_settings_file(path) is False  # a restart keeps the same keys
    assert read_settings_file(path) == first
    other = tmp_path / "other.env"
    ensure_settings_file(other)
    assert read_settings_file(other)[API_KEYS] != first[API_KEYS]


def test_values_apply_only_to_unset_variables(tmp_path: Path) -> None:
    path = tmp_path / "settings.env"
    path.write_text(
        "# comment\n\nexport FOUNDRY_SERVICE_API_KEYS='from-file'\nFOUNDRY_X=\"quoted\"\n"
        f"{SYSTEM_KEY}=sys\n"
    )
    values = read_settings_file(path)
    assert values == {API_KEYS: "from-file", "FOUNDRY_X": "quoted", SYSTEM_KEY: "sys"}
    unset: dict[str, str] = {}
    assert apply_defaults(unset, values) == [API_KEYS, "FOUNDRY_X", SYSTEM_KEY]
    assert unset[API_KEYS] == "from-file"
    explicitly_empty = {API_KEYS: ""}
    apply_defaults(explicitly_empty, values)
    assert explicitly_empty[API_KEYS] == ""  # refuses everything, no fallback key
    chosen = {API_KEYS: "mine"}
    apply_defaults(chosen, values)
    assert chosen[API_KEYS] == "mine"


def test_private_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "admin.env"
    write_private(path, "export X=1\n")
    write_private(path, "export X=2\n")
    assert path.read_text() == "export X=2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
