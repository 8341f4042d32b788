"""The service's routes as the Functions host matches them, and the request-line limit.

How the host routes (azure-functions-host ``WebScriptHostHttpRoutesManager`` and the HTTP
extension's ``WebJobsRouter``): built-in ``/admin/*`` and ``/runtime/webhooks/*`` routes are
matched first (MVC, before any function route). Function routes then form one ASP.NET
``RouteCollection`` in *function-name order* (ordinal, ignoring case), and the first route whose
template and HTTP-method constraint both match wins: there is no "most specific template" ranking,
and a method mismatch falls through to the next route instead of answering 405. So a catch-all
``{*path}`` function must sort after every other function (see :data:`CATCH_ALL_FUNCTION`), and it
is what turns an unknown path into a JSON 404 and a known path with the wrong method into a JSON
405 with ``Allow``. :data:`ROUTES` is the table it answers from; a test holds it equal to the
app's indexed bindings.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

#: The longest URL (path plus ``?query``) the service serves, in bytes. The deployment's host is
#: Linux (Flex Consumption): Kestrel refuses a request line over 8192 bytes (method, URL and
#: protocol together) with a bare 414 before the app sees it. 8000 leaves room for the rest of
#: the line, so every URL that reaches the app and is too long gets the JSON 414 from here.
#: (Windows plans' front end refuses URLs over 4 KB itself.)
MAX_URL_BYTES = 8000

#: Its name sorts after every other function's, so the host tries its route last.
CATCH_ALL_FUNCTION = "zz_unmatched_route"
CATCH_ALL_ROUTE = "{*path}"

#: Route template -> HTTP methods, exactly as the functions declare them.
ROUTES: dict[str, frozenset[str]] = {
    "v1/jobs": frozenset({"GET", "POST"}),
    "v1/jobs/{job_id}": frozenset({"GET"}),
    "v1/jobs/{job_id}/logs": frozenset({"GET"}),
    "v1/jobs/{job_id}/artifact": frozenset({"GET"}),
    "v1/jobs/{job_id}/diagnostics": frozenset({"GET"}),
    "v1/jobs/{job_id}/cancel": frozenset({"POST"}),
    "v1/jobs/{job_id}/preview": frozenset({"DELETE"}),
    "v1/jobs/{job_id}/build-events": frozenset({"POST"}),
    "v1/healthz": frozenset({"GET"}),
    "v1/openapi.json": frozenset({"GET"}),
}


def template_pattern(template: str) -> re.Pattern[str]:
    """An ASP.NET route template as a regex over the URL path: literal segments match ignoring
    case, ``{name}`` (with or without a ``:constraint``) one segment, ``{*name}`` the rest."""
    parts = []
    for segment in template.strip("/").split("/"):
        catch_all = re.fullmatch(r"\{\*\*?(\w+)\}", segment)
        parameter = re.fullmatch(r"\{(\w+)(?::[^}]*)?\}", segment)
        if catch_all:
            parts.append(f"(?P<{catch_all.group(1)}>.*)")
        elif parameter:
            parts.append(f"(?P<{parameter.group(1)}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("/" + "/".join(parts) + "/?", re.IGNORECASE)


_COMPILED = [(template_pattern(template), methods) for template, methods in ROUTES.items()]


def allowed_methods(path: str) -> frozenset[str]:
    """The methods of every route whose template matches ``path`` (empty: no such route)."""
    allowed: set[str] = set()
    for pattern, methods in _COMPILED:
        if pattern.fullmatch(path):
            allowed |= methods
    return frozenset(allowed)


def url_bytes(url: str) -> int:
    """The length of a request URL's path and query, as sent (percent-encoded)."""
    parts = urlsplit(url)
    return len(parts.path.encode()) + (len(parts.query.encode()) + 1 if parts.query else 0)
