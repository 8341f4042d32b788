"""Durable orchestrators. No I/O and no wall clock here: only the durable context."""
