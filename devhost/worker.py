"""The stand-in for the Python worker's event loop: one asyncio loop per process, on its own
thread, where every function invocation runs.

Why one loop: the durable SDK keeps a single process-wide aiohttp session for its calls to the
host, bound to the loop that first used it, exactly as in the real worker, where all async
functions share one loop. Invocations made from anywhere (the dev server's loop, a test's
``asyncio.run``, another thread) are therefore handed to this loop, and the caller waits for the
result without blocking its own loop. It also keeps the host's loop (HTTP accept, the durable
management API) independent of the app's code, as the real host and worker are separate
processes.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
#: Threads for synchronous functions and ``asyncio.to_thread`` inside the app.
THREADS = 32


class WorkerLoop:
    def __init__(self, threads: int = THREADS) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="worker")
        )
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="functions-worker", daemon=True
        )
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the worker loop and wait for it (from any thread but the worker's)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("WorkerLoop.run called on the worker loop itself: await instead")
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        """Close the SDK's HTTP session on this loop, then stop the loop. The real worker never
        closes it (the process just ends); here it keeps "Unclosed client session" off stderr."""
        from azure.durable_functions.models.utils import http_utils

        with contextlib.suppress(Exception):
            self.run(http_utils._close_session(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on the worker loop, from any event loop."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            return await coro
        return await asyncio.wrap_future(self.submit(coro))


_worker: WorkerLoop | None = None
_lock = threading.Lock()


def worker_loop() -> WorkerLoop:
    """The process's worker loop (started on first use, a daemon thread for the process's life)."""
    global _worker
    with _lock:
        if _worker is None:
            _worker = WorkerLoop()
            atexit.register(_worker.close)
        return _worker


def run_in_worker(coro: Coroutine[Any, Any, T], timeout: float | None = 120) -> T:
    """Run a coroutine that uses a durable client (e.g. ``run_maintenance``) where function code
    runs. Tests use it instead of ``asyncio.run``."""
    return worker_loop().run(coro, timeout)
