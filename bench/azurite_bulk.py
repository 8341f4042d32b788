"""Loads many table rows into a *stopped* Azurite's store file, for the 100,000-job measurement.

Why not transactions: Azurite keeps a table in LokiJS, which looks an entity up by narrowing on
PartitionKey and then scanning. Every row of the jobs table shares one partition, so each insert
costs time linear in the rows already there: 100,000 jobs through entity-group transactions take
hours (tens of rows per second past 20,000). Azure Table storage looks keys up in an index and
has no such cost; only the emulator does. So the bench seeds a few thousand rows through
transactions like the tests, and for larger sizes writes the rest straight into the store file
while Azurite is stopped, in the shape Azurite's own insert gives them (properties as the SDK
sends them, plus Timestamp, eTag and Loki metadata), and rebuilds the table's Loki indexes.
:func:`check_loaded` reads a sample back through the SDK after the restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from azure.data.tables import TableClient
from azure.data.tables._serialize import _add_entity_properties

STORE_FILE = "__azurite_db_table__.json"
ACCOUNT = "devstoreaccount1"


def _timestamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"  # 7 fraction digits, as Azurite writes


def bulk_load(location: Path, table: str, entities: Iterable[Mapping[str, Any]]) -> int:
    """Append ``entities`` to ``table`` in the store file under ``location`` (Azurite stopped).
    Returns how many were written. Keys must be new."""
    path = location / STORE_FILE
    store = json.loads(path.read_text())
    name = f"{ACCOUNT}${table}"
    (collection,) = [c for c in store["collections"] if c["name"] == name]
    now = datetime.now(UTC)
    stamp = _timestamp(now)
    etag = f"W/\"datetime'{quote(stamp)}'\""
    created_ms = int(now.timestamp() * 1000)
    next_id = int(collection["maxId"])
    written = 0
    for entity in entities:
        next_id += 1
        properties = _add_entity_properties(entity)
        properties["Timestamp"] = stamp
        properties["Timestamp@odata.type"] = "Edm.DateTime"
        collection["data"].append(
            {
                "PartitionKey": entity["PartitionKey"],
                "RowKey": entity["RowKey"],
                "properties": properties,
                "lastModifiedTime": stamp,
                "eTag": etag,
                "meta": {"revision": 0, "created": created_ms, "version": 0},
                "$loki": next_id,
            }
        )
        written += 1
    collection["maxId"] = next_id
    data = collection["data"]
    # Loki's indexes, as it keeps them: ids in data order, and for each indexed property the
    # data positions sorted by that property (Azurite's collections use adaptive indexes, which
    # Loki maintains on writes but does not rebuild on load).
    collection["idIndex"] = [doc["$loki"] for doc in data]
    for prop, index in collection["binaryIndices"].items():
        keys = [str(doc[prop]) for doc in data]
        index["values"] = sorted(range(len(data)), key=keys.__getitem__)
        index["dirty"] = False
    path.write_text(json.dumps(store))
    return written


def check_loaded(table: TableClient, sample: Mapping[str, Any]) -> None:
    """A bulk-loaded row reads back through the SDK with its values."""
    got = table.get_entity(sample["PartitionKey"], sample["RowKey"])
    for key, value in sample.items():
        if key in ("PartitionKey", "RowKey"):
            continue
        if got[key] != value:
            raise AssertionError(f"bulk-loaded {key}: {got[key]!r} != {value!r}")
