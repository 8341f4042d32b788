"""The container's entry point: ``python -m proxy`` serves the LLM proxy on ``0.0.0.0:$PORT``
(8080 by default; the Container App's ingress target port)."""

from __future__ import annotations

import asyncio
import logging
import os

from proxy.server import bind, make_server, proxy_from_env
from shared import log_context, telemetry


def main() -> None:
    log_context.install(json_lines=True)  # secrets scrubbed from every line
    logging.getLogger().setLevel(logging.INFO)
    telemetry.configure()
    port = int(os.environ.get("PORT", "8080"))
    server = make_server(proxy_from_env)
    # Inside the container the environment's (internal) ingress is the only way in.
    listener = bind("0.0.0.0", port)  # noqa: S104 - the container's port, reached via ingress
    asyncio.run(server.serve(sockets=[listener]))


if __name__ == "__main__":
    main()
