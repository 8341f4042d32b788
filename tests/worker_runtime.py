"""The real Python worker's indexing and validation, run over an app's ``function_app.py``.

On Azure and under ``func start`` the worker imports ``function_app.py``, indexes the app and
checks every function's signature against its bindings before it reports any metadata to the
host; one rejected function fails the whole metadata response, so the host indexes nothing.
``azure-functions-runtime`` on PyPI carries that same code (``loader.py``, ``functions.py``). It
declares Python 3.13+, so it is never installed: the pinned wheel is downloaded, its sha256
checked, it is unpacked under ``.cache/`` (gitignored), and only ``loader``/``functions`` (and
what they import) are loaded, under the project's Python, with :class:`Protos` standing in for
the generated protobuf modules the host hands the worker.

Run as ``python -m tests.worker_runtime RUNTIME_DIR [--app-dir DIR]``: prints a JSON report
(``functions``: the metadata the host would receive; ``rejected``: per-function load errors;
``app_error``: the error that fails the whole metadata response, or ``null``). A subprocess keeps
the worker's module state and the app's import side effects out of the test process.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VERSION = "1.3.0"
WHEEL = f"azure_functions_runtime-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "5045cf1e1a9a33ff262043eb52cf976834d2f2b6c67c20da61588fe7dc2fcf64"
CACHE = ROOT / ".cache" / "azure-functions-runtime"
#: Lines for the end of the pytest run (tests/conftest.py prints them): what the host receives.
SUMMARY: list[str] = []


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_runtime(cache: Path = CACHE) -> Path:
    """The unpacked, verified runtime (downloaded on first use); returns its directory."""
    unpacked = cache / f"{VERSION}-{WHEEL_SHA256[:12]}"
    if (unpacked / "azure_functions_runtime" / "functions.py").exists():
        return unpacked
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / WHEEL
    if not wheel.exists() or _sha256(wheel) != WHEEL_SHA256:
        wheel.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as download:
            subprocess.run(
                [
                    sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--python-version", "3.13", "--only-binary=:all:", "-d", download,
                    f"azure-functions-runtime=={VERSION}",
                ],
                check=True,
                timeout=300,
            )  # fmt: skip
            shutil.move(str(Path(download) / WHEEL), wheel)
    actual = _sha256(wheel)
    if actual != WHEEL_SHA256:
        wheel.unlink()
        raise RuntimeError(f"{WHEEL}: sha256 {actual} is not the pinned {WHEEL_SHA256}")
    staging = Path(tempfile.mkdtemp(dir=cache))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(staging)
    try:
        staging.rename(unpacked)  # atomic: a concurrent run either wins or finds it done
    except OSError:
        shutil.rmtree(staging)
    return unpacked


def run_indexing(app_dir: Path = ROOT, *, timeout: float = 120) -> dict[str, Any]:
    """Index and validate ``app_dir/function_app.py`` in a fresh interpreter; the JSON report."""
    runtime = ensure_runtime()
    done = subprocess.run(
        [
            sys.executable, "-m", "tests.worker_runtime", str(runtime),
            "--app-dir", str(app_dir),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"worker indexing crashed ({done.returncode}):\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


class _Message:
    """A protobuf message stand-in: keyword fields only, and only the declared ones."""

    FIELDS: tuple[str, ...] = ()

    def __init__(self, **fields: Any) -> None:
        unknown = set(fields) - set(self.FIELDS)
        if unknown:
            raise ValueError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        self.fields = fields


class _BindingInfo(_Message):
    FIELDS = ("type", "direction", "data_type", "properties")
    # Enum values of the worker's FunctionRpc.proto (BindingInfo.Direction / DataType).
    out, inout = 1, 2
    undefined, string, binary, stream = 0, 1, 2, 3


setattr(_BindingInfo, "in", 0)  # "in" is a keyword: protobuf exposes that enum value so


class Protos:
    """What ``loader.process_indexed_function`` needs of the generated protobuf modules."""

    BindingInfo = _BindingInfo

    class RpcFunctionMetadata(_Message):
        FIELDS = (
            "name", "directory", "script_file", "entry_point", "bindings", "is_proxy",
            "status", "language", "raw_bindings", "function_id", "managed_dependency_enabled",
            "retry_options", "properties",
        )  # fmt: skip

    class RpcRetryOptions(_Message):
        FIELDS = (
            "max_retry_count", "delay_interval", "minimum_interval", "maximum_interval",
            "retry_strategy",
        )  # fmt: skip


def _load_worker(runtime: Path) -> tuple[Any, Any, Any]:
    """The worker's loader, functions and bindings.meta modules, without its package
    ``__init__`` (that one starts the gRPC side, which needs the real protos and Python 3.13)."""
    package = types.ModuleType("azure_functions_runtime")
    package.__path__ = [str(runtime / "azure_functions_runtime")]
    sys.modules["azure_functions_runtime"] = package
    loader = importlib.import_module("azure_functions_runtime.loader")
    functions = importlib.import_module("azure_functions_runtime.functions")
    meta = importlib.import_module("azure_functions_runtime.bindings.meta")
    return loader, functions, meta


def _describe(metadata: Any) -> dict[str, Any]:
    fields = dict(metadata.fields)
    fields["bindings"] = {name: b.fields for name, b in fields["bindings"].items()}
    fields["raw_bindings"] = [json.loads(raw) for raw in fields["raw_bindings"]]
    retry = fields.get("retry_options")
    fields["retry_options"] = (
        None if retry is None else {k: str(v) for k, v in retry.fields.items()}
    )
    return fields


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runtime", type=Path)
    parser.add_argument("--app-dir", type=Path, default=ROOT)
    args = parser.parse_args()
    app_dir = args.app_dir.resolve()
    os.chdir(app_dir)  # the worker runs with the app's directory as cwd and first on sys.path
    sys.path.insert(0, str(app_dir))
    loader, functions, meta = _load_worker(args.runtime)
    meta.load_binding_registry()  # what worker_init_request does before indexing
    indexed = loader.index_function_app(str(app_dir / "function_app.py"))
    rejected: dict[str, str] = {}
    for function in indexed:  # each alone, so the report names every rejected function
        try:
            loader.process_indexed_function(Protos, functions.Registry(), [function], str(app_dir))
        except functions.FunctionLoadError as exc:
            rejected[function.get_function_name()] = str(exc)
    registry = functions.Registry()
    try:  # and all at once, exactly as the worker answers the host's metadata request
        results, _ = loader.process_indexed_function(Protos, registry, indexed, str(app_dir))
        app_error = None
    except functions.FunctionLoadError as exc:
        results, app_error = [], str(exc)
    # How the worker will invoke each function: async ones on its event loop, the rest on its
    # thread pool; and the Python type it resolved for each input binding.
    invocation = {
        info.name: {
            "is_async": info.is_async,
            "inputs": {name: repr(t.pytype) for name, t in info.input_types.items()},
        }
        for info in registry._functions.values()
    }
    report = {
        "runtime": f"azure-functions-runtime {VERSION}",
        "indexed": [f.get_function_name() for f in indexed],
        "rejected": rejected,
        "app_error": app_error,
        "functions": [{**_describe(m), "worker": invocation[m.fields["name"]]} for m in results],
    }
    json.dump(report, sys.stdout, default=str)


if __name__ == "__main__":
    _main()
