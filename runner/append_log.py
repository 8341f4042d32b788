"""One append blob that this runner alone writes, appended to exactly once per piece of data.

Every append carries ``appendpos`` = the length the blob had after our previous append. When a
reply is lost and the append is sent again (by the SDK's retry or by ours), the second copy fails
its position check instead of landing twice; :meth:`AppendLog.append` then re-reads the blob and
finds its data already there. Limits of the service are respected: at most
:data:`MAX_BLOCK_BYTES` per append and :data:`MAX_BLOCKS` committed blocks per blob.
"""

from __future__ import annotations

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import BlobClient, ContentSettings

MAX_BLOCK_BYTES = 4 * 1024 * 1024
MAX_BLOCKS = 50_000
_RECONCILE_ATTEMPTS = 3


class LogUnwritable(Exception):
    """Nothing more can be appended to this blob, whatever the retries."""


class LogFull(LogUnwritable):
    """The blob holds the maximum number of blocks."""


class LogRefused(LogUnwritable):
    """Storage refuses the grant (expired or revoked SAS: HTTP 403)."""


class AppendLog:
    """Tracks ``length`` (bytes committed, ours and any predecessor's) and ``blocks`` (committed
    block count) of the blob; both only ever grow, and only from what the service reported."""

    def __init__(
        self,
        client: BlobClient,
        *,
        content_type: str,
        max_blocks: int = MAX_BLOCKS,
        max_block_bytes: int = MAX_BLOCK_BYTES,
    ) -> None:
        self.client = client
        self.content_type = content_type
        self.max_blocks = max_blocks
        self.max_block_bytes = max_block_bytes
        self.length = 0
        self.blocks = 0
        self.full = False
        self.opened = False
        #: Appends whose first reply was lost but whose data turned out to be in the blob.
        self.reconciled = 0

    def open(self) -> None:
        """Create the blob if it does not exist (never truncating it), else learn its size: a
        blob this call created is empty, so that costs no second request."""
        try:
            self.client.create_append_blob(
                content_settings=ContentSettings(content_type=self.content_type),
                if_none_match="*",
            )
        except ResourceExistsError:
            self._refresh()
        except HttpResponseError as exc:
            if exc.status_code == 403:
                raise LogRefused from None
            if exc.status_code not in (409, 412):
                raise
            self._refresh()
        else:
            self.length, self.blocks, self.full = 0, 0, False
        self.opened = True

    def _refresh(self) -> None:
        props = self.client.get_blob_properties()
        self.length = int(props.size)
        self.blocks = int(props.append_blob_committed_block_count or 0)
        self.full = self.blocks >= self.max_blocks

    @property
    def blocks_left(self) -> int:
        return max(0, self.max_blocks - self.blocks)

    def append(self, data: bytes) -> None:
        """Append ``data`` (one block) exactly once; raises :class:`LogFull` when the blob cannot
        take another block, and the SDK's errors for faults it could not retry away."""
        if not data:
            return
        if len(data) > self.max_block_bytes:
            raise ValueError(f"an append block holds at most {self.max_block_bytes} bytes")
        for _ in range(_RECONCILE_ATTEMPTS):
            if self.full or self.blocks >= self.max_blocks:
                self.full = True
                raise LogFull
            try:
                reply = self.client.append_block(data, appendpos_condition=self.length)
            except HttpResponseError as exc:
                if _error_code(exc) == "BlockCountExceedsLimit":
                    self.full = True
                    raise LogFull from None
                if exc.status_code == 403:
                    raise LogRefused from None
                if exc.status_code != 412:
                    raise
                if self._landed_earlier(data):
                    return
                continue  # someone else's bytes moved the end: append ours after them
            self.length += len(data)
            count = reply.get("blob_committed_block_count")
            self.blocks = count if isinstance(count, int) else self.blocks + 1
            return
        raise RuntimeError("append position kept moving; another writer is appending")

    def _landed_earlier(self, data: bytes) -> bool:
        """After a position mismatch: is ``data`` already at our offset (an earlier try of this
        very append whose reply was lost)? Moves ``length``/``blocks`` to the blob's values."""
        start = self.length
        self._refresh()
        end = start + len(data)
        if self.length >= end:
            there = self.client.download_blob(offset=start, length=len(data)).readall()
            if there == data:
                self.reconciled += 1
                return True
        return False


def _error_code(exc: HttpResponseError) -> str | None:
    code = getattr(exc, "error_code", None)
    if code is None and exc.response is not None:
        code = getattr(exc.response, "headers", {}).get("x-ms-error-code")
    return str(code) if code else None
