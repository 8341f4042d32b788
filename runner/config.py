"""The runner's configuration, read once from the environment it is started with.

Inputs (see docs/build-job.md): ``FOUNDRY_JOB_ID`` and ``FOUNDRY_STORAGE_GRANT`` (required),
``FOUNDRY_BUILDER_COMMAND`` (required: the builder's argv, shell-quoted), the proxy credentials
the builder uses (``ANTHROPIC_AUTH_TOKEN``, ``ANTHROPIC_BASE_URL``), where to post notices
(``FOUNDRY_BUILD_EVENTS_URL``, optional), and optional ``FOUNDRY_RUNNER_*`` tuning. The builder
inherits the environment minus the grant and the runner's own settings.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.grant import Grant, GrantError, parse_grant

JOB_ID_ENV = "FOUNDRY_JOB_ID"
GRANT_ENV = "FOUNDRY_STORAGE_GRANT"
BUILDER_COMMAND_ENV = "FOUNDRY_BUILDER_COMMAND"
STREAM_FILE_ENV = "FOUNDRY_BUILDER_STREAM_FILE"
EVENTS_URL_ENV = "FOUNDRY_BUILD_EVENTS_URL"
TOKEN_ENV = "ANTHROPIC_AUTH_TOKEN"  # noqa: S105 - the variable's name, not its value
RUNNER_ENV_PREFIX = "FOUNDRY_RUNNER_"
#: Env vars whose values are secrets: scrubbed from everything the runner uploads.
SECRET_ENVS = (TOKEN_ENV, "ANTHROPIC_API_KEY")
#: Never handed to the builder: with the grant it could rewrite its own logs and result.
WITHHELD_FROM_BUILDER = (GRANT_ENV, BUILDER_COMMAND_ENV, STREAM_FILE_ENV, EVENTS_URL_ENV)
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ConfigError(ValueError):
    """The environment does not describe a runnable job (message names the variable)."""


@dataclass(frozen=True)
class RunnerConfig:
    job_id: str
    grant: Grant
    builder_command: list[str]
    workspace: Path
    builder_env: dict[str, str] = field(repr=False)
    secrets: list[str] = field(repr=False)
    #: The builder writes its stream to this file (relative to the work dir) instead of stdout.
    stream_file: str | None = None
    #: Where the runner posts its notices (the service's build-events route), and the token.
    events_url: str | None = None
    token: str | None = field(default=None, repr=False)
    #: Wall-clock limit for the builder, 0 = none (ACA's replica timeout still applies).
    timeout_secs: float = 0.0
    term_grace_secs: float = 10.0
    flush_interval_secs: float = 0.25
    flush_bytes: int = 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunnerConfig:
        job_id = env.get(JOB_ID_ENV, "")
        if not _JOB_ID.match(job_id):
            raise ConfigError(f"{JOB_ID_ENV} is missing or not a job id")
        raw_grant = env.get(GRANT_ENV, "")
        if not raw_grant:
            raise ConfigError(f"{GRANT_ENV} is not set")
        try:
            grant = parse_grant(raw_grant, job_id)
        except GrantError as exc:
            raise ConfigError(str(exc)) from None
        try:
            command = shlex.split(env.get(BUILDER_COMMAND_ENV, ""))
        except ValueError:
            raise ConfigError(f"{BUILDER_COMMAND_ENV} is not valid shell quoting") from None
        if not command:
            raise ConfigError(f"{BUILDER_COMMAND_ENV} is not set")
        stream_file = env.get(STREAM_FILE_ENV) or None
        if stream_file is not None and (
            Path(stream_file).is_absolute() or ".." in Path(stream_file).parts
        ):
            raise ConfigError(f"{STREAM_FILE_ENV} must be a path inside the work directory")
        secrets = [env[name] for name in SECRET_ENVS if env.get(name)]
        secrets += grant.signatures()
        builder_env = {
            k: v
            for k, v in env.items()
            if k not in WITHHELD_FROM_BUILDER and not k.startswith(RUNNER_ENV_PREFIX)
        }
        return cls(
            job_id=job_id,
            grant=grant,
            builder_command=command,
            workspace=Path(env.get(RUNNER_ENV_PREFIX + "WORKDIR") or ".").resolve(),
            builder_env=builder_env,
            secrets=secrets,
            stream_file=stream_file,
            events_url=env.get(EVENTS_URL_ENV) or None,
            token=env.get(TOKEN_ENV) or None,
            timeout_secs=_number(env, "TIMEOUT_SECS", 0.0),
            term_grace_secs=_number(env, "TERM_GRACE_SECS", 10.0),
            flush_interval_secs=_number(env, "FLUSH_MS", 250.0) / 1000,
            flush_bytes=int(_number(env, "FLUSH_BYTES", 1024 * 1024, minimum=1)),
        )


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(RUNNER_ENV_PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{RUNNER_ENV_PREFIX}{name} must be a number") from None
    if value < minimum:
        raise ConfigError(f"{RUNNER_ENV_PREFIX}{name} must be at least {minimum:g}")
    return value
