"""The builders' LLM proxy as its own small ASGI service (a Container App in the ACA environment,
next to the build jobs), so replies stream for as long as the upstream sends them."""
