"""Activity functions: thin triggers over :mod:`shared.pipeline.steps`."""
