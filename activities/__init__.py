"""Activity functions: thin triggers over :mod:`shared.job_steps`."""
