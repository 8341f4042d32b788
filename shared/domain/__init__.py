"""Pure domain: the job record and its status machine, ids, request validation, stream events.

Nothing here does I/O or imports an Azure SDK (a lint rule in pyproject.toml enforces it)."""
