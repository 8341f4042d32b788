"""Create-once records of a job's backend steps, one row each in the ``<prefix>stepmarkers``
table: PartitionKey = job id, RowKey = the marker's name, and the marker itself as one JSON
string property.

A marker says that a step which must not run twice has run (e.g. the ACR Tasks run of a job's
image build), so a retried activity finds it instead of starting the step again. It is service
state, not a job artifact, so it is a table row: a blob write costs about 140 table transactions
(docs/cost-model.md). Invariants: a marker is written once, by a conditional insert, and never
updated, so the first one written is the one every reader sees. Markers hold identifiers (run
ids, image references), never a secret.
"""

from __future__ import annotations

import json
from typing import Any

from azure.data.tables import TableClient, TableServiceClient

from shared.errors import AlreadyExists, NotFound, translate_azure_errors


class StepMarkers:
    def __init__(self, service: TableServiceClient, *, prefix: str) -> None:
        self._service = service
        self.table: TableClient = service.get_table_client(f"{prefix}stepmarkers")

    def create_tables(self) -> None:
        with translate_azure_errors("create step marker table"):
            self._service.create_table_if_not_exists(self.table.table_name)

    def record_once(self, job_id: str, name: str, value: dict[str, Any]) -> bool:
        """Insert the marker if ``job_id`` has none called ``name``. True if this call wrote it;
        False if one existed already, which is then kept unchanged."""
        row = {"PartitionKey": job_id, "RowKey": name, "value": json.dumps(value)}
        try:
            with translate_azure_errors(f"record step marker {name}"):
                self.table.create_entity(row)
        except AlreadyExists:
            return False
        return True

    def get(self, job_id: str, name: str) -> dict[str, Any] | None:
        """The marker ``name`` of ``job_id`` as it was recorded, or None if there is none."""
        try:
            with translate_azure_errors(f"read step marker {name}"):
                entity = self.table.get_entity(job_id, name, select=["value"])
        except NotFound:
            return None
        return dict(json.loads(entity["value"]))
