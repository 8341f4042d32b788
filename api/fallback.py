"""The catch-all route: what the host would answer with an empty text/plain 404 becomes the JSON
envelope, ``404 not_found`` for an unknown path and ``405 method_not_allowed`` with ``Allow``
for a known path asked with another method (see ``api.routing`` for why this works under the
real host: its name sorts last, so every specific route is tried first)."""

from __future__ import annotations

from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func

from api.edge import handle_public
from api.http import ApiError, ErrorCode, not_found
from api.routing import CATCH_ALL_FUNCTION, CATCH_ALL_ROUTE, allowed_methods

bp = df.Blueprint()


@bp.function_name(name=CATCH_ALL_FUNCTION)
@bp.route(route=CATCH_ALL_ROUTE, auth_level=func.AuthLevel.ANONYMOUS)  # no methods: all of them
def unmatched_route(req: func.HttpRequest) -> func.HttpResponse:
    def run(req: func.HttpRequest) -> func.HttpResponse:
        allowed = allowed_methods(urlsplit(req.url).path)
        if not allowed:
            raise not_found("no such route")
        raise ApiError(
            405,
            ErrorCode.METHOD_NOT_ALLOWED,
            f"{req.method.upper()} is not allowed here",
            {"Allow": ", ".join(sorted(allowed))},
        )

    return handle_public(req, run)
