"""Storage adapters: Table rows (jobs, claims, slots, tokens) and Blob objects (inputs, logs,
artifacts, audit). Every azure-core error is translated by
:func:`shared.errors.translate_azure_errors`."""
