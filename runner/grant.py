"""The storage grant the service hands the build job in ``FOUNDRY_STORAGE_GRANT``.

Format (made by ``shared.storage.job_blobs.builder_grant``): a JSON object mapping a grant name
to the full SAS URL of one blob under ``jobs/<job id>/`` of the service's container, e.g.
``{"inputs": "https://<account>.blob.core.windows.net/<container>/jobs/fj_…/input/inputs.json?…&sig=…"}``.
Each URL carries its own permissions (``sp``); the runner never holds an account credential.

Nothing here ever puts a URL into an error message: every URL carries a signature.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

#: Blobs the runner cannot work without.
REQUIRED = ("stream_log",)
#: The inputs: ``inputs`` (SPEC and TASKS in one blob), or a service from before it, or a job
#: submitted before it, the two files ``spec_md`` and ``tasks_md``. One of the two is required.
INPUTS = "inputs"
LEGACY_INPUTS = ("spec_md", "tasks_md")
#: Blobs the runner writes when the grant has them.
OPTIONAL = ("stderr_log", "source_artifact", "diagnostics")


class GrantError(ValueError):
    """The grant is missing, malformed, or not for this job."""


@dataclass(frozen=True)
class Grant:
    urls: Mapping[str, str] = field(repr=False)  # every URL carries a signature

    def url(self, name: str) -> str | None:
        return self.urls.get(name)

    def signatures(self) -> list[str]:
        """Every ``sig`` value of the grant, as it appears in the URL and URL-decoded."""
        found: set[str] = set()
        for url in self.urls.values():
            query = urlsplit(url).query
            for part in query.split("&"):
                key, _, value = part.partition("=")
                if key.lower() == "sig" and value:
                    found.update({value, unquote(value)})
            for value in parse_qs(query).get("sig", []):
                found.add(value)
        return sorted(found)


def parse_grant(raw: str, job_id: str) -> Grant:
    """Parse and check the grant: a JSON object of https/http URLs, the required names present,
    every URL pointing into ``jobs/<job_id>/``."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise GrantError("FOUNDRY_STORAGE_GRANT is not JSON") from None
    if not isinstance(data, dict):
        raise GrantError("FOUNDRY_STORAGE_GRANT is not a JSON object")
    urls: dict[str, str] = {}
    for name, url in data.items():
        if not isinstance(name, str) or not isinstance(url, str):
            raise GrantError("FOUNDRY_STORAGE_GRANT maps names to URL strings")
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise GrantError(f"grant entry {name!r} is not an http(s) URL")
        if f"/jobs/{job_id}/" not in parts.path:
            raise GrantError(f"grant entry {name!r} is not for job {job_id}")
        urls[name] = url
    missing = [name for name in REQUIRED if name not in urls]
    if INPUTS not in urls and not all(name in urls for name in LEGACY_INPUTS):
        missing.append(INPUTS)
    if missing:
        raise GrantError("FOUNDRY_STORAGE_GRANT lacks " + ", ".join(missing))
    return Grant(urls)
