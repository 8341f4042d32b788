"""Stand-ins for the Functions host, for tests and the local dev server (no ``func`` needed)."""
