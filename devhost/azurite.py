"""Starts the Azurite emulator (npm package) on free loopback ports and stops it by PID.

Used by the test suite (in memory) and by the dev server (persistent, ``location``). With
``die_with_parent`` Azurite is started through :mod:`shared.backends.parent_death`, so a SIGKILLed
dev server takes it along (with SIGTERM, on which Azurite saves its data) instead of leaving it
holding its ports and data directory. Azurite persists to disk every 5 s and on shutdown: only a
SIGKILL of Azurite itself loses the last seconds of writes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devhost.ports import free_port
from shared.backends import parent_death

ROOT = Path(__file__).resolve().parents[1]
SIGTERM_ONCE = Path(__file__).with_name("azurite_sigterm_once.cjs")
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        base = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={base}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint={base}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={base}:{self.table_port}/{ACCOUNT};"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def azurite_binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise RuntimeError(
        "Azurite is not installed: run `npm ci` in the repository root "
        "(the README's test command does it for you)"
    )


def start_azurite(
    log_dir: Path,
    *,
    ports: list[int] | None = None,
    location: Path | None = None,
    die_with_parent: bool = False,
) -> Azurite:
    """In-memory on free ports by default; ``location`` persists data (survives a restart).
    ``die_with_parent``: call it from a thread that lives as long as the caller (the main one)."""
    ports = ports or [free_port() for _ in range(3)]
    log_dir.mkdir(parents=True, exist_ok=True)
    persistence = ["--location", str(location)] if location else ["--inMemoryPersistence"]
    cmd = [
        azurite_binary(),
        "--silent",
        *persistence,
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--loose",
        "--blobHost", "127.0.0.1", "--blobPort", str(ports[0]),
        "--queueHost", "127.0.0.1", "--queuePort", str(ports[1]),
        "--tableHost", "127.0.0.1", "--tablePort", str(ports[2]),
    ]  # fmt: skip
    env = None
    if die_with_parent:  # SIGTERM: Azurite saves its database on the way out
        cmd = [sys.executable, "-S", parent_death.__file__, str(os.getpid()), "TERM", "--", *cmd]
        preload = f'--require "{SIGTERM_ONCE}"'
        env = {**os.environ, "NODE_OPTIONS": f"{os.environ.get('NODE_OPTIONS', '')} {preload}"}
    with (log_dir / "azurite.log").open("ab") as log:
        # S603: a fixed command (the installed Azurite, loopback ports), no outside input.
        proc = subprocess.Popen(  # noqa: S603
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    azurite = Azurite(proc, *ports)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Azurite exited early; see {log_dir / 'azurite.log'}")
        try:
            for port in ports:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    pass
            return azurite
        except OSError:
            time.sleep(0.05)
    azurite.stop()
    raise RuntimeError("Azurite did not open its ports within 30 s")
