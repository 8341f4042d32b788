"""System tests: the whole app through the dev host, not one module."""
