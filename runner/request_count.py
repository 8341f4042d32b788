"""Counting the runner's storage requests (no SDK import: the runner loads the SDK lazily)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class RequestCount:
    """Storage requests the runner made, by HTTP method, counted at the SDK transport (every
    response, retries included): the job side's share of the account's transactions, reported
    in the result marker for the cost model."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, method: str) -> None:
        with self._lock:
            self._counts[method] += 1

    def hook(self, pipeline_response: Any) -> None:
        """The SDK's ``raw_response_hook``."""
        self.add(str(pipeline_response.http_request.method))

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))
