"""The hashed locks agree with the declared dependencies (offline: no resolver, no network).

``scripts/lock.sh`` writes requirements.txt / requirements-dev.txt from the .in files; these
tests catch a .in edit that was committed without re-running it, and a lock entry that lost its
hashes (pip's --require-hashes would refuse the whole install)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(path: Path) -> dict[str, str]:
    """``name==version`` lines of a .in file, following its ``-r`` includes."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            pins.update(declared(path.parent / line[3:].strip()))
        elif match := PIN.match(line):
            pins[canonical(match.group(1))] = match.group(2)
        elif line:
            pytest.fail(f"{path.name}: pin exact versions (name==X.Y.Z), got {line!r}")
    return pins


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """Each locked package: its version and how many hashes follow it."""
    entries: dict[str, tuple[str, int]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        if match := PIN.match(line):
            current = canonical(match.group(1))
            entries[current] = (match.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
    return entries


@pytest.mark.parametrize(
    ("source", "lock"),
    [("requirements.in", "requirements.txt"), ("requirements-dev.in", "requirements-dev.txt")],
)
def test_every_declared_pin_is_locked_at_its_version(source: str, lock: str) -> None:
    entries = locked(ROOT / lock)
    for name, version in declared(ROOT / source).items():
        assert name in entries, f"{name} is in {source} but not {lock}: run bash scripts/lock.sh"
        assert entries[name][0] == version, (
            f"{name}: {source} pins {version}, {lock} has {entries[name][0]}: "
            "run bash scripts/lock.sh"
        )


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_every_locked_package_carries_hashes(lock: str) -> None:
    entries = locked(ROOT / lock)
    assert len(entries) > 20  # the parser found the lock's entries at all
    assert [name for name, (_, hashes) in entries.items() if hashes == 0] == []


def test_dev_lock_holds_the_runtime_lock_exactly() -> None:
    """Tests run against the versions that deploy (lock.sh constrains one by the other)."""
    runtime, dev = locked(ROOT / "requirements.txt"), locked(ROOT / "requirements-dev.txt")
    assert {n: v for n, (v, _) in runtime.items()} == {n: dev[n][0] for n in runtime if n in dev}
    assert set(runtime) <= set(dev)


def test_the_runtime_lock_leaves_the_worker_to_the_platform() -> None:
    assert "azure-functions-worker" not in locked(ROOT / "requirements.txt")
