"""Reads Dockerfiles the way the tests need to check them without Docker: instructions with
their arguments, build-argument defaults substituted, and ``.dockerignore`` matching."""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        """The JSON array form (``["python", "-m", "runner"]``), or ``None`` for shell form."""
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        return value if isinstance(value, list) else None


def parse(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comments inside a continued instruction are dropped by Docker too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    defaults = {}
    for ins in instructions:
        if ins.keyword == "ARG" and "=" in ins.args:
            name, _, value = ins.args.partition("=")
            defaults[name] = value.strip('"')
    return defaults


def substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m[1] or m[2], m[0]), text)


def env_values(instructions: list[Instruction], args: dict[str, str]) -> dict[str, str]:
    """``ENV`` settings (``KEY=value`` form), build arguments substituted."""
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ENV":
            for match in re.finditer(r'(\w+)=("[^"]*"|\S+)', ins.args):
                env[match[1]] = substitute(match[2].strip('"'), {**args, **env})
    return env


def copy_sources(ins: Instruction) -> tuple[list[str], str]:
    """``COPY [--flags] src... dest`` -> (sources, dest)."""
    parts = ins.exec_form() or [p for p in ins.args.split() if not p.startswith("--")]
    return parts[:-1], parts[-1]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether ``.dockerignore`` keeps ``path`` out of the context: the last pattern matching the
    path or one of its parents decides; ``!`` re-includes."""
    candidates = [str(p) for p in [*reversed(PurePosixPath(path).parents), PurePosixPath(path)]]
    candidates = [c for c in candidates if c != "."]
    excluded = False
    for raw in patterns:
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = fnmatch.translate(pattern).replace(".*.*/", "(?:.*/)?")
        if any(re.match(regex, c) for c in candidates):
            excluded = not negate
    return excluded
