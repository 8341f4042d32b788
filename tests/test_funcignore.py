""".funcignore is an allowlist: the deployed package holds what the Functions app imports and reads
at run time, and nothing else (no operator tools, tests, infra, docs or dev requirements).

The package is computed the way azd builds it: walk the project root, skip an ignored directory
without looking inside, always leave out ``.azure/``, ``.funcignore`` and ``local.settings.json``.
Two readings of the rules must agree: git's own (``git ls-files --others --exclude-standard`` on
a scratch tree with the same paths, .funcignore as its .gitignore), and the rules of the matcher
azd actually uses (denormal/go-gitignore), re-implemented below from its three pattern kinds.
git is the oracle rather than a Python gitignore library: pathspec's GitIgnoreSpec lets
"!/pkg/**" beat a later "__pycache__/", and its basic patterns let "!/pkg/" re-include the files
below pkg/, where git does neither.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FUNCIGNORE = ROOT / ".funcignore"
LINES = FUNCIGNORE.read_text().splitlines()
TOP_LEVEL = {"function_app.py", "host.json", "requirements.txt"}
#: Never deployed: operator tools, tests, local dev host, infra, docs, Node and dev-only files.
EXCLUDED = (
    "admin/",
    "scripts/",
    "examples/",
    "tests/",
    "bench/",
    "devhost/",
    "infra/",
    "docs/",
    "runner/",
    "node_modules/",
    ".venv/",
    ".azure/",
    "package.json",
    "package-lock.json",
    "requirements-dev.txt",
    "pyproject.toml",
    "azure.yaml",
    "README.md",
    "local.settings.sample.json",
    "orchestrators/ruff.toml",  # the determinism lint bans, a dev tool
)
#: Paths that may not exist in a checkout but must stay out if they ever do.
PLACEHOLDERS = (
    "runner/Dockerfile",
    ".venv/bin/python",
    "node_modules/azurite/index.js",
    ".azure/prod/.env",
    "shared/__pycache__/auth.cpython-311.pyc",
    "api/local.settings.json",
    "new_tool/cli.py",
    "NOTES.txt",
    ".env",
)
#: Not mirrored into the scratch tree (huge, or git's own).
UNMIRRORED = {".git", ".venv", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache"}

Matcher = Callable[[str, bool], bool]  # (path relative to the root, is a directory) -> ignored


def git_package(tree: Path, lines: list[str]) -> set[str]:
    """Files git would not ignore in ``tree`` with ``lines`` as the only ignore rules."""
    (tree / ".gitignore").write_text("\n".join(lines) + "\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tree.parent), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", str(tree)], check=True, env=env)
    listed = subprocess.run(
        ["git", "-c", "core.excludesFile=", "ls-files", "--others", "--exclude-standard", "-z"],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # azd never ships these, whatever the rules say; .gitignore stands in for .funcignore
    always_out = (".gitignore", "local.settings.json")
    return {f for f in listed.split("\0") if f and f.rsplit("/", 1)[-1] not in always_out}


def _pathname_regex(pattern: str) -> re.Pattern[str]:
    """fnmatch with FNM_PATHNAME: wildcards never match '/'."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


@dataclass(frozen=True)
class _AzdPattern:
    negated: bool
    anchored: bool
    directory: bool
    body: str

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self.directory and not is_dir:
            return False
        parts = self.body.split("/")
        if "**" in parts:  # "any": component by component, "**" spans zero or more
            return self._any(rel.split("/"), parts)
        if "/" in self.body:  # "path": the whole relative path, wildcards stop at '/'
            return bool(_pathname_regex(self.body).match(rel))
        # "name": without FNM_PATHNAME, so an anchored "*" also matches across '/'
        return fnmatchcase(rel if self.anchored else rel.rsplit("/", 1)[-1], self.body)

    def _any(self, path: list[str], tokens: list[str]) -> bool:
        if not tokens:
            return not path
        if tokens[0] == "**":
            return self._any(path, tokens[1:]) or (bool(path) and self._any(path[1:], tokens))
        return (
            bool(path)
            and bool(_pathname_regex(tokens[0]).match(path[0]))
            and self._any(path[1:], tokens[1:])
        )


def azd_matcher(lines: list[str]) -> Matcher:
    """denormal/go-gitignore as azd calls it: the last matching pattern decides."""
    patterns: list[_AzdPattern] = []
    for raw in lines:
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line[1:] if negated else line
        anchored = line.startswith("/")
        line = line[1:] if anchored else line
        directory = line.endswith("/")
        patterns.append(_AzdPattern(negated, anchored, directory, line.rstrip("/")))

    def ignored(rel: str, is_dir: bool) -> bool:
        for pattern in reversed(patterns):
            if pattern.matches(rel, is_dir):
                return not pattern.negated
        return False

    return ignored


def deployed_files(root: Path, ignored: Matcher) -> set[str]:
    """azd's walk: prune ignored directories, skip its fixed exclusions."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        dirnames[:] = sorted(
            d for d in dirnames if d not in (".azure", ".git") and not ignored(prefix + d, True)
        )
        for name in filenames:
            skip = name in (".funcignore", ".gitignore", "local.settings.json")
            if not skip and not ignored(prefix + name, False):
                found.add(prefix + name)
    return found


def first_party_imports(entry: Path) -> set[str]:
    """Files of every first-party module ``entry`` imports, transitively (lazy imports too)."""
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        package = path.parent.relative_to(ROOT).parts
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                prefix = list(package[: len(package) - node.level + 1]) if node.level else []
                module = [*prefix, *(node.module.split(".") if node.module else [])]
                names = [".".join(module)] + [".".join([*module, a.name]) for a in node.names]
            for name in names:
                parts = name.split(".")
                for depth in range(1, len(parts) + 1):  # a package's __init__ runs first
                    stem = ROOT.joinpath(*parts[:depth])
                    for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
                        if candidate.is_file():
                            todo.append(candidate)
    return {p.relative_to(ROOT).as_posix() for p in seen}


@dataclass(frozen=True)
class Package:
    tree: Path
    git: set[str]
    azd: set[str]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """The repository's paths (empty files) plus PLACEHOLDERS, packaged under both readings."""
    tree = tmp_path_factory.mktemp("package") / "tree"
    for dirpath, dirnames, filenames in os.walk(ROOT):
        base = Path(dirpath).relative_to(ROOT)
        dirnames[:] = [d for d in dirnames if d not in UNMIRRORED]
        for name in filenames:
            if name not in (".git", ".gitignore"):
                (tree / base).mkdir(parents=True, exist_ok=True)
                (tree / base / name).touch()
    for placeholder in PLACEHOLDERS:
        (tree / placeholder).parent.mkdir(parents=True, exist_ok=True)
        (tree / placeholder).touch()
    git = git_package(tree, LINES)
    return Package(tree, git, deployed_files(tree, azd_matcher(LINES)))


def test_git_and_azd_give_the_same_package(package: Package) -> None:
    assert package.git == package.azd, {
        "git only": package.git - package.azd,
        "azd only": package.azd - package.git,
    }


def test_funcignore_is_an_allowlist(package: Package) -> None:
    rules = [line for line in LINES if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"
    # A new top-level file or directory does not ship unless it is added here on purpose.
    assert {f for f in package.git if "/" not in f} == TOP_LEVEL
    assert {f for f in package.git if f.split("/")[0] not in TOP_LEVEL} and all(
        f.split("/")[0] in {"orchestrators", "activities", "api", "timers", "shared"}
        for f in package.git
        if f not in TOP_LEVEL
    )


@pytest.mark.parametrize("prefix", EXCLUDED)
def test_never_deployed(package: Package, prefix: str) -> None:
    assert any(p == prefix or p.startswith(prefix) for p in _tree_files(package.tree)), prefix
    for reading in (package.git, package.azd):
        shipped = {f for f in reading if f == prefix or f.startswith(prefix)}
        assert not shipped, shipped


def _tree_files(tree: Path) -> set[str]:
    return {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}


def test_no_bytecode_local_settings_or_env_files_ship(package: Package) -> None:
    for reading in (package.git, package.azd):
        assert not {f for f in reading if "__pycache__/" in f or f.endswith(".pyc")}
        assert not {f for f in reading if f.endswith(("local.settings.json", ".env"))}


def test_everything_the_app_imports_or_reads_is_deployed(package: Package) -> None:
    needed = first_party_imports(ROOT / "function_app.py")
    assert {"shared/backends/azure_aca.py", "orchestrators/run_job.py"} <= needed  # sanity
    assert package.git >= TOP_LEVEL
    missing = needed - package.git
    assert not missing, f"function_app.py imports these, but .funcignore leaves them out: {missing}"
    # /v1/openapi.json is generated from the models by api/openapi.py: no data file is read.
    assert "api/openapi.py" in package.git


@pytest.mark.parametrize(
    ("lines", "shipped"),
    [
        # An anchored "/*" is a name pattern matched without FNM_PATHNAME in azd's matcher: unlike
        # git, it also hides the files of a re-included directory ...
        (
            ["/*", "!/pkg/"],
            {"git": {"pkg/a.py", "pkg/sub/a.py", "pkg/__pycache__/x.pyc"}, "azd": set()},
        ),
        # ... and a bare "*" hides them in both, hence the "!/pkg/**" lines in .funcignore.
        (["*", "!/pkg/"], {"git": set(), "azd": set()}),
        (
            ["*", "!/pkg/", "!/pkg/**", "__pycache__/"],
            {"git": {"pkg/a.py", "pkg/sub/a.py"}, "azd": {"pkg/a.py", "pkg/sub/a.py"}},
        ),
    ],
)
def test_the_azd_reading_differs_from_git_where_expected(
    tmp_path: Path, lines: list[str], shipped: dict[str, set[str]]
) -> None:
    tree = tmp_path / "tree"
    for name in ("pkg/a.py", "pkg/sub/a.py", "pkg/__pycache__/x.pyc", "other.py"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).touch()
    assert git_package(tree, lines) == shipped["git"]
    assert deployed_files(tree, azd_matcher(lines)) == shipped["azd"]
