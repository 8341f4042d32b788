"""A fake of the Azure endpoints the backend calls, on HTTPS loopback, recording every request:
ARM (Microsoft.App jobs/executions/containerApps, ACR Tasks), ACR's source upload, and the ACR
data plane with its OAuth challenge/exchange. Faults can be injected per method and path.

For the operator's preflight (admin/preflight.py) it also serves what that reads: the registry
resource, tags and manifests, a Function App with its Key Vault reference states, user-assigned
identities, role assignments and definitions (with ARM's ``$filter`` semantics), and
``/v1/healthz``. These start empty: a test describes the deployment it wants."""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

APP = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.App"
ACR = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.ContainerRegistry/registries/(?P<acr>[^/]+)"
)
GROUP = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
SITE = GROUP + r"/providers/Microsoft\.Web/sites/(?P<site>[^/]+)"
IDENTITY = GROUP + r"/providers/Microsoft\.ManagedIdentity/userAssignedIdentities/(?P<name>[^/]+)"
AUTHORIZATION = r"(?P<scope>/subscriptions/.+?)/providers/Microsoft\.Authorization/"


class FakeCredential:
    """A TokenCredential for tests: never touches a network."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-aad-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo("fake-aad-token", int(time.time()) + 3600)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version", [None])[0]


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    remaining: int
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    after: bool = False  # process the request, then reply with the fault (a lost response)


class FakeAzure:
    def __init__(self, directory: Path) -> None:
        self.cert, key = make_certificate(directory)
        self.requests: list[Recorded] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.executions: dict[str, list[dict[str, Any]]] = {}
        self.apps: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, bytes] = {}
        self.repositories: set[str] = set()
        #: repository -> tag -> manifest digest (the ACR data plane's tags and manifests)
        self.tags: dict[str, dict[str, str]] = {}
        #: ARM resources by name (registries, sites, identities); lists for the rest
        self.registries: dict[str, dict[str, Any]] = {}
        self.sites: dict[str, dict[str, Any]] = {}
        self.config_references: dict[str, list[dict[str, Any]]] = {}
        self.identities: dict[str, dict[str, Any]] = {}
        self.role_assignments: list[dict[str, Any]] = []
        self.role_definitions: list[dict[str, Any]] = []
        self.health: tuple[int, Any] = (200, {"status": "ok"})
        self.faults: list[Fault] = []
        self.warm_status = 200
        self.run_outcome = "Succeeded"
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, each keep-alive reply waits
            # out the client's delayed ACK (about 40 ms a request).
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                fake._handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        # A short poll: shutdown() waits for the serving loop's next look (0.5 s by default).
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- test controls -----------------------------------------------------------------------
    def fail(
        self,
        method: str,
        path_regex: str,
        *,
        status: int = 500,
        times: int = 1,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
        code: str = "Injected",
        after: bool = False,
    ) -> None:
        body = {"error": {"code": code, "message": f"injected {status}"}}
        self.faults.append(
            Fault(method, re.compile(path_regex), status, times, delay, headers or {}, body, after)
        )

    def calls(self, method: str, path_regex: str) -> list[Recorded]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method and pattern.search(r.path)]

    def push_image(self, repository: str, tag: str) -> str:
        """A tag in the registry's data plane; answers its manifest digest."""
        digest = "sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, f"{repository}:{tag}").hex * 2
        self.repositories.add(repository)
        self.tags.setdefault(repository, {})[tag] = digest
        return digest

    def set_execution_status(self, job_name: str, status: str) -> None:
        for execution in self.executions.get(job_name, []):
            execution["properties"]["status"] = status

    def resources_left(self) -> dict[str, Any]:
        return {
            "jobs": sorted(self.jobs),
            "apps": sorted(self.apps),
            "repositories": sorted(self.repositories),
            "running_runs": sorted(
                r for r, v in self.runs.items() if v["status"] in ("Queued", "Running")
            ),
        }

    # -- dispatch ----------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body: Any = raw
        ctype = h.headers.get("Content-Type", "")
        if "json" in ctype and raw:
            body = json.loads(raw)
        elif "form" in ctype:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        record = Recorded(
            h.command,
            parts.path,
            parse_qs(parts.query),
            body,
            {k.lower(): v for k, v in h.headers.items()},
        )
        with self.lock:
            self.requests.append(record)
            fault = next(
                (
                    f
                    for f in self.faults
                    if f.remaining > 0 and f.method == h.command and f.pattern.search(parts.path)
                ),
                None,
            )
            if fault is not None:
                fault.remaining -= 1
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.after:
                with self.lock:
                    self._route(h.command, parts.path, record)
            self._reply(h, fault.status, fault.body, fault.headers)
            return
        with self.lock:
            status, payload, headers = self._route(h.command, parts.path, record)
        self._reply(h, status, payload, headers)

    def _reply(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        if data:
            h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _route(self, method: str, path: str, rec: Recorded) -> tuple[int, Any, dict[str, str]]:
        m = re.fullmatch(APP + r"/jobs/(?P<name>[^/]+)", path)
        if m:
            return self._job(method, m["name"], rec)
        m = re.fullmatch(APP + r"/jobs/(?P<name>[^/]+)/start", path)
        if m and method == "POST":
            if m["name"] not in self.jobs:
                return 404, {"error": {"code": "ResourceNotFound"}}, {}
            execution = {
                "name": f"{m['name']}-{uuid.uuid4().hex[:7]}",
                "id": f"{path}/executions/x",
                "properties": {
                    "status": "Running",
                    "startTime": dt.datetime.now(dt.UTC).isoformat(),
                },
            }
            self.executions.setdefault(m["name"], []).append(execution)
            return 200, {"name": execution["name"], "id": execution["id"]}, {}
        m = re.fullmatch(APP + r"/jobs/(?P<name>[^/]+)/executions", path)
        if m and method == "GET":
            if m["name"] not in self.jobs:
                return 404, {"error": {"code": "ResourceNotFound"}}, {}
            return 200, {"value": self.executions.get(m["name"], [])}, {}
        m = re.fullmatch(APP + r"/jobs/(?P<name>[^/]+)/executions/(?P<ex>[^/]+)/stop", path)
        if m and method == "POST":
            for execution in self.executions.get(m["name"], []):
                if execution["name"] == m["ex"]:
                    execution["properties"]["status"] = "Stopped"
                    return 200, None, {}
            return 404, {"error": {"code": "ResourceNotFound"}}, {}
        if re.fullmatch(APP + r"/jobs", path) and method == "GET":
            return 200, {"value": list(self.jobs.values())}, {}
        m = re.fullmatch(APP + r"/containerApps/(?P<name>[^/]+)", path)
        if m:
            return self._app(method, m["name"], rec)
        if re.fullmatch(APP + r"/containerApps", path) and method == "GET":
            return 200, {"value": list(self.apps.values())}, {}
        m = re.fullmatch(ACR, path)
        if m and method == "GET":
            return self._get(self.registries, m["acr"])
        m = re.fullmatch(SITE, path)
        if m and method == "GET":
            return self._get(self.sites, m["site"])
        m = re.fullmatch(SITE + r"/config/configreferences/appsettings", path)
        if m and method == "GET":
            if m["site"] not in self.sites:
                return 404, {"error": {"code": "ResourceNotFound"}}, {}
            return 200, {"value": self.config_references.get(m["site"], [])}, {}
        m = re.fullmatch(IDENTITY, path)
        if m and method == "GET":
            return self._get(self.identities, m["name"])
        m = re.fullmatch(AUTHORIZATION + r"(?P<kind>roleAssignments|roleDefinitions)", path)
        if m and method == "GET":
            return self._authorization(m["scope"], m["kind"], rec)
        m = re.fullmatch(ACR + r"/listBuildSourceUploadUrl", path)
        if m and method == "POST":
            token = uuid.uuid4().hex
            return (
                200,
                {
                    "uploadUrl": f"{self.url}/upload/{token}?sv=2024&sig=fake",
                    "relativePath": f"source/{token}.tar.gz",
                },
                {},
            )
        m = re.fullmatch(r"/upload/(?P<token>[^/]+)", path)
        if m and method == "PUT":
            self.uploads[f"source/{m['token']}.tar.gz"] = rec.body
            return 201, None, {}
        m = re.fullmatch(ACR + r"/scheduleRun", path)
        if m and method == "POST":
            if rec.body.get("sourceLocation") not in self.uploads:
                return 400, {"error": {"code": "InvalidSource"}}, {}
            run_id = f"ca{len(self.runs) + 1}"
            self.runs[run_id] = {"status": "Running", "request": rec.body}
            return 200, self._run(run_id), {}
        m = re.fullmatch(ACR + r"/runs/(?P<run>[^/]+)", path)
        if m and method == "GET":
            run = self.runs.get(m["run"])
            if run is None:
                return 404, {"error": {"code": "NotFound"}}, {}
            if run["status"] in ("Running", "Started"):  # completes on its second look
                run["status"] = "Started" if "seen" not in run else self.run_outcome
                run["seen"] = True
                if run["status"] == "Succeeded":
                    image = run["request"]["imageNames"][0]
                    self.repositories.add(image.split(":")[0])
            return 200, self._run(m["run"]), {}
        m = re.fullmatch(ACR + r"/runs/(?P<run>[^/]+)/cancel", path)
        if m and method == "POST":
            self.runs[m["run"]]["status"] = "Canceled"
            # 200, as the 2025-03-01-preview spec (Runs_Cancel) and its SDK expect: the SDK
            # takes any other status for an error, so a 202 here made every cancel raise.
            return 200, None, {}
        return self._registry(method, path, rec)

    @staticmethod
    def _get(resources: dict[str, dict[str, Any]], name: str) -> tuple[int, Any, dict[str, str]]:
        if name not in resources:
            return 404, {"error": {"code": "ResourceNotFound", "message": name}}, {}
        return 200, resources[name], {}

    def _authorization(
        self, scope: str, kind: str, rec: Recorded
    ) -> tuple[int, Any, dict[str, str]]:
        """ARM's list semantics: role assignments ``$filter=principalId eq '<id>'`` at, above
        and below ``scope``; role definitions ``$filter=roleName eq '<name>'``. The fake wants
        the filter: listing every assignment of a group is not what the preflight should do."""
        odata = rec.query.get("$filter", [""])[0]
        wanted = re.fullmatch(r"(principalId|roleName) eq '([^']*)'", odata)
        field = "principalId" if kind == "roleAssignments" else "roleName"
        if wanted is None or wanted[1] != field:
            return 400, {"error": {"code": "InvalidFilter", "message": odata}}, {}
        if kind == "roleDefinitions":
            found = [d for d in self.role_definitions if d["properties"]["roleName"] == wanted[2]]
            return 200, {"value": found}, {}
        here = scope.lower()
        found = [
            a
            for a in self.role_assignments
            if a["properties"]["principalId"] == wanted[2]
            and (
                a["properties"]["scope"].lower().startswith(here)
                or here.startswith(a["properties"]["scope"].lower())
            )
        ]
        return 200, {"value": found}, {}

    def _run(self, run_id: str) -> dict[str, Any]:
        status = self.runs[run_id]["status"]
        status = "Running" if status == "Started" else status
        return {
            "id": f"/runs/{run_id}",
            "name": run_id,
            "type": "Microsoft.ContainerRegistry/registries/runs",
            "properties": {"runId": run_id, "status": status},
        }

    def _job(self, method: str, name: str, rec: Recorded) -> tuple[int, Any, dict[str, str]]:
        if method == "PUT":
            created = name not in self.jobs
            body = copy.deepcopy(rec.body)
            resource = {**body, "name": name, "id": rec.path, "type": "Microsoft.App/jobs"}
            resource["properties"] = {**body["properties"], "provisioningState": "Succeeded"}
            # ARM never echoes secret values back.
            config = resource["properties"].get("configuration", {})
            config["secrets"] = [{"name": s["name"]} for s in config.get("secrets", [])]
            self.jobs[name] = resource
            return (201 if created else 200), resource, {}
        if method == "GET":
            return (
                (200, self.jobs[name], {})
                if name in self.jobs
                else (404, {"error": {"code": "ResourceNotFound"}}, {})
            )
        if method == "DELETE":
            existed = self.jobs.pop(name, None) is not None
            self.executions.pop(name, None)
            return (200 if existed else 204), None, {}
        return 405, None, {}

    def _app(self, method: str, name: str, rec: Recorded) -> tuple[int, Any, dict[str, str]]:
        if method == "PUT":
            created = name not in self.apps
            body = copy.deepcopy(rec.body)
            resource = {**body, "name": name, "id": rec.path, "type": "Microsoft.App/containerApps"}
            props = {**body["properties"], "provisioningState": "Succeeded"}
            props["configuration"]["ingress"] = {
                **props["configuration"]["ingress"],
                "fqdn": self.host,
            }
            resource["properties"] = props
            self.apps[name] = resource
            return (201 if created else 200), resource, {}
        if method == "GET":
            return (
                (200, self.apps[name], {})
                if name in self.apps
                else (404, {"error": {"code": "ResourceNotFound"}}, {})
            )
        if method == "DELETE":
            existed = self.apps.pop(name, None) is not None
            return (200 if existed else 204), None, {}
        return 405, None, {}

    def _registry(self, method: str, path: str, rec: Recorded) -> tuple[int, Any, dict[str, str]]:
        if path == "/oauth2/exchange" and method == "POST":
            assert rec.body.get("access_token") == "fake-aad-token"
            return 200, {"refresh_token": "acr-refresh"}, {}
        if path == "/oauth2/token" and method == "POST":
            return 200, {"access_token": "acr-access"}, {}
        if path.startswith("/acr/v1/"):
            item = re.fullmatch(
                r"/acr/v1/(?P<repo>.+)/_(?P<kind>tags|manifests)/(?P<ref>[^/]+)", path
            )
            if rec.headers.get("authorization") != "Bearer acr-access":
                scope = (
                    "registry:catalog:*"
                    if path.endswith("_catalog")
                    else f"repository:{unquote(item['repo'])}:metadata_read"
                    if item
                    else f"repository:{path[len('/acr/v1/') :]}:delete"
                )
                challenge = (
                    f'Bearer realm="{self.url}/oauth2/token",service="{self.host}",scope="{scope}"'
                )
                return 401, {"errors": [{"code": "UNAUTHORIZED"}]}, {"WWW-Authenticate": challenge}
            if path == "/acr/v1/_catalog" and method == "GET":
                return 200, {"repositories": sorted(self.repositories)}, {}
            if item and method == "GET":
                return self._artifact(unquote(item["repo"]), item["kind"], unquote(item["ref"]))
            repo = unquote(path[len("/acr/v1/") :])
            if method == "DELETE":
                if repo not in self.repositories:
                    return 404, {"errors": [{"code": "NAME_UNKNOWN"}]}, {}
                self.repositories.discard(repo)
                return 202, {"manifestsDeleted": [], "tagsDeleted": []}, {}
        if method == "GET" and path == "/v1/healthz":
            return self.health[0], self.health[1], {}
        if method == "GET" and path in ("/", "/healthz"):
            return self.warm_status, {"ok": True}, {}
        return 404, {"error": {"code": "NoRoute", "message": f"{method} {path}"}}, {}

    def _artifact(self, repo: str, kind: str, ref: str) -> tuple[int, Any, dict[str, str]]:
        """A tag's or a manifest's properties, as the ACR data plane (2021-07-01) shapes them."""
        if repo not in self.repositories:
            return 404, {"errors": [{"code": "NAME_UNKNOWN", "message": repo}]}, {}
        tags = self.tags.get(repo, {})
        now = dt.datetime.now(dt.UTC).isoformat()
        flags = {"deleteEnabled": True, "writeEnabled": True, "readEnabled": True}
        flags["listEnabled"] = True
        if kind == "tags":
            if ref not in tags:
                return 404, {"errors": [{"code": "TAG_UNKNOWN", "message": ref}]}, {}
            tag = {"name": ref, "digest": tags[ref], "createdTime": now, "lastUpdateTime": now}
            body = {
                "registry": self.host,
                "imageName": repo,
                "tag": {**tag, "changeableAttributes": flags},
            }
            return 200, body, {}
        if ref not in tags.values():
            return 404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": ref}]}, {}
        manifest = {
            "digest": ref,
            "createdTime": now,
            "lastUpdateTime": now,
            "tags": sorted(t for t, d in tags.items() if d == ref),
            "changeableAttributes": flags,
        }
        return 200, {"registry": self.host, "imageName": repo, "manifest": manifest}, {}
