"""The one settings loader, checked over every field of every settings class.

The cases are derived from the dataclasses themselves (their fields, types, minimums and
``env_var`` metadata), so a field added later is covered without touching this file: it must be
reachable by exactly one variable of its own, that variable must be in the README, and a bad
number in it must be refused with the variable's name."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import annotated_types
import pytest
from pydantic import Field

from shared.config.azure import REQUIRED, AzureSettings
from shared.config.azure import P as AZURE_PREFIX
from shared.config.env import NOT_FROM_ENV, Binding, bindings, env_var, load
from shared.config.settings import ENV_PREFIX, SECRET_SETTINGS, Settings
from shared.errors import ConfigurationError
from shared.llm_proxy import PROXY_ENV_PREFIX, ProxySettings

ROOT = Path(__file__).resolve().parents[3]
KEY_VAULT_REFERENCE = "@Microsoft.KeyVault(VaultName=kv-public-name;SecretName=s)"


@dataclass(frozen=True)
class Case:
    """A settings class, how it is read, and the least environment it loads from."""

    cls: type[Any]
    prefix: str
    from_env: Callable[[Mapping[str, str]], Any]
    base: Mapping[str, str]
    #: Fields the environment never sets, on purpose (a new one must be added here knowingly).
    not_from_env: frozenset[str]

    def __str__(self) -> str:
        return self.cls.__name__


CASES = [
    Case(
        Settings,
        ENV_PREFIX,
        Settings.from_env,
        {"FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT": "st"},
        frozenset({"unresolved_secrets"}),
    ),
    Case(
        AzureSettings,
        AZURE_PREFIX,
        AzureSettings.from_env,
        {AZURE_PREFIX + name: "x" for name in REQUIRED},
        frozenset(),
    ),
    Case(
        ProxySettings,
        PROXY_ENV_PREFIX,
        ProxySettings.from_env,
        {},
        frozenset({"anthropic_version", "timeout_secs", "prices"}),
    ),
]


def all_bindings() -> list[tuple[Case, Binding]]:
    return [(case, b) for case in CASES for b in bindings(case.cls, case.prefix)]


def hint(case: Case, binding: Binding) -> Any:
    return typing.get_type_hints(case.cls, include_extras=True)[binding.field]


def base_type(case: Case, binding: Binding) -> Any:
    return typing.get_type_hints(case.cls)[binding.field]


def minimum(case: Case, binding: Binding) -> float | None:
    """The ``ge`` of the field's ``Annotated[..., Field(ge=...)]``, if any."""
    for extra in typing.get_args(hint(case, binding))[1:]:
        for constraint in getattr(extra, "metadata", ()):
            if isinstance(constraint, annotated_types.Ge):
                return float(constraint.ge)
    return None


def numeric(kind: type) -> list[tuple[Case, Binding]]:
    return [(c, b) for c, b in all_bindings() if base_type(c, b) is kind]


def case_id(value: object) -> str:
    return value.variable if isinstance(value, Binding) else str(value)


def sample(case: Case, binding: Binding) -> tuple[str, object]:
    """A valid value for the field that differs from its default, as text and as parsed."""
    kind = base_type(case, binding)
    floor = minimum(case, binding) or 0
    if kind is int:
        return str(int(floor) + 7), int(floor) + 7
    if kind is float:
        return str(floor + 1.5), floor + 1.5
    if typing.get_origin(kind) is typing.Literal:
        choice = typing.get_args(kind)[-1]
        return choice, choice
    if kind == tuple[str, ...]:
        return " a, b ,", ("a", "b")
    if kind == dict[str, str]:
        return '{"acme": "cert-id"}', {"acme": "cert-id"}
    assert kind in (str, str | None), f"add a sample for {kind}"
    return f"value-of-{binding.field}", f"value-of-{binding.field}"


def configuration_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Configuration")
    return readme[start : readme.index("\n## ", start + 1)]


# --- every field is reachable by exactly one documented variable ------------------------------


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_field_has_one_variable_of_its_own(case: Case) -> None:
    found = bindings(case.cls, case.prefix)
    fields = {f.name for f in dataclasses.fields(case.cls)}
    assert {b.field for b in found} == fields - case.not_from_env
    own = [b.variable for b in found]
    assert len(own) == len(set(own)), f"two fields share a variable: {own}"
    every = [v for b in found for v in b.variables]
    assert len(every) == len(set(every)), f"a variable feeds two fields: {every}"


@pytest.mark.parametrize(("case", "binding"), all_bindings(), ids=case_id)
def test_each_variable_sets_its_field(case: Case, binding: Binding) -> None:
    for variable in binding.variables:  # its own, then each fallback on its own
        text, parsed = sample(case, binding)
        environ = {**case.base, variable: text}
        if binding.field in ("min_ttl_hours", "default_ttl_hours", "max_ttl_hours"):
            loaded = load(case.cls, environ, prefix=case.prefix)  # TTL order is checked after
        else:
            loaded = case.from_env(environ)
        assert getattr(loaded, binding.field) == parsed, variable


@pytest.mark.parametrize(("case", "binding"), all_bindings(), ids=case_id)
def test_each_variable_is_documented_in_the_readme(case: Case, binding: Binding) -> None:
    section = configuration_section()
    for variable in binding.variables:
        assert f"`{variable}`" in section, f"document {variable} in README ## Configuration"


def test_blank_means_unset_and_values_are_stripped() -> None:
    defaults = Settings.from_env({"FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT": "st"})
    assert defaults == Settings(storage_account="st")
    padded = Settings.from_env(
        {
            "FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT": " st\t",
            "FOUNDRY_SERVICE_QUEUE_CAP": " 7 ",
            "FOUNDRY_SERVICE_API_KEYS": "  k1,k2 \n",
            "FOUNDRY_SERVICE_PREVIEW_DOMAIN": "   ",
        }
    )
    assert (padded.storage_account, padded.queue_cap) == ("st", 7)
    assert padded.api_keys == "k1,k2"
    assert padded.preview_domain == "foundry.local"
    proxy = ProxySettings.from_env(
        {
            "FOUNDRY_SERVICE_ANTHROPIC_BASE_URL": " http://127.0.0.1:9// ",
            "FOUNDRY_SERVICE_PROXY_MODEL_PREFIXES": " , ",
        }
    )
    assert proxy.upstream_url == "http://127.0.0.1:9"
    assert proxy.model_prefixes == ("claude-",)  # a list of no entries is unset


def test_constructing_a_settings_class_reads_no_environment(monkeypatch) -> None:
    monkeypatch.setenv("FOUNDRY_SERVICE_QUEUE_CAP", "abc")
    monkeypatch.setenv("FOUNDRY_SERVICE_PROXY_MAX_CONCURRENT", "abc")
    assert Settings().queue_cap == 50
    assert dataclasses.replace(Settings(), queue_cap=5).queue_cap == 5
    assert ProxySettings().max_concurrent == 64


# --- a bad value is refused, named by its variable ---------------------------------------------


def refusal(case: Case, variable: str, value: str) -> str:
    with pytest.raises(ConfigurationError) as err:
        case.from_env({**case.base, variable: value})
    return str(err.value)


@pytest.mark.parametrize(("case", "binding"), numeric(int) + numeric(float), ids=case_id)
@pytest.mark.parametrize("value", ["abc", "-", "1,5", "0x10", "½", "٣"])
def test_a_number_that_is_no_number_is_refused_by_name(
    case: Case, binding: Binding, value: str
) -> None:
    message = refusal(case, binding.variable, value)
    assert message.startswith(binding.variable + " must be ")
    assert message.endswith(f", got {value!r}")


@pytest.mark.parametrize(("case", "binding"), numeric(int), ids=case_id)
@pytest.mark.parametrize("value", ["²", "1.0", "1e3", "7 7", "9" * 5000])
def test_an_integer_field_takes_ascii_whole_numbers_only(
    case: Case, binding: Binding, value: str
) -> None:
    assert refusal(case, binding.variable, value).startswith(
        f"{binding.variable} must be an integer"
    )


@pytest.mark.parametrize(("case", "binding"), numeric(float), ids=case_id)
@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_a_float_field_is_finite(case: Case, binding: Binding, value: str) -> None:
    assert refusal(case, binding.variable, value).startswith(
        f"{binding.variable} must be a finite number"
    )


@pytest.mark.parametrize(
    ("case", "binding"),
    [(c, b) for c, b in numeric(int) + numeric(float) if minimum(c, b) is not None],
    ids=case_id,
)
def test_a_number_under_its_minimum_is_refused(case: Case, binding: Binding) -> None:
    floor = minimum(case, binding)
    assert floor is not None
    kind = base_type(case, binding)
    below = str(int(floor) - 1) if kind is int else str(floor - 0.05)
    message = refusal(case, binding.variable, below)
    assert message == f"{binding.variable} must be >= {kind(floor)}, got {below!r}"
    at_floor = str(int(floor)) if kind is int else str(floor)
    loaded = load(case.cls, {**case.base, binding.variable: at_floor}, prefix=case.prefix)
    assert getattr(loaded, binding.field) == floor


def test_the_minimums_are_todays() -> None:
    found = {
        b.variable: minimum(c, b) for c, b in numeric(int) + numeric(float) if c.cls is Settings
    }
    assert found == {
        "FOUNDRY_SERVICE_STORAGE_CONNECT_TIMEOUT_SECS": 0.1,
        "FOUNDRY_SERVICE_STORAGE_READ_TIMEOUT_SECS": 0.1,
        "FOUNDRY_SERVICE_STORAGE_RETRY_TOTAL": 0,
        "FOUNDRY_SERVICE_MAX_INPUT_BYTES": 1,
        "FOUNDRY_SERVICE_MIN_TTL_HOURS": 1,
        "FOUNDRY_SERVICE_DEFAULT_TTL_HOURS": 1,
        "FOUNDRY_SERVICE_MAX_TTL_HOURS": 1,
        "FOUNDRY_SERVICE_QUEUE_CAP": 1,
        "FOUNDRY_SERVICE_MAX_CONCURRENT_BUILDS": 1,
        "FOUNDRY_SERVICE_BUILD_TIMEOUT_SECS": 1,
        "FOUNDRY_SERVICE_IMAGE_BUILD_TIMEOUT_SECS": 1,
        "FOUNDRY_SERVICE_DEPLOY_TIMEOUT_SECS": 1,
        "FOUNDRY_SERVICE_POLL_MAX_SECS": 2,
        "FOUNDRY_SERVICE_BUILD_CHECK_SECS": 0,
        "FOUNDRY_SERVICE_CHECK_WAIT_SECS": 0,
        "FOUNDRY_SERVICE_AZURE_SIGNED_URL_TTL_SECS": 60,
        "FOUNDRY_SERVICE_SAS_GRANT_MARGIN_SECS": 300,
        "FOUNDRY_SERVICE_HISTORY_RETENTION_DAYS": 1,
    }


@pytest.mark.parametrize("value", ["abc", "0", "-1", "²", "64.5"])
def test_proxy_max_concurrent_is_refused_not_defaulted(value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^FOUNDRY_SERVICE_PROXY_MAX_CONCURRENT must be"):
        ProxySettings.from_env({"FOUNDRY_SERVICE_PROXY_MAX_CONCURRENT": value})
    assert ProxySettings.from_env({"FOUNDRY_SERVICE_PROXY_MAX_CONCURRENT": "8"}).max_concurrent == 8


def test_a_build_backend_outside_the_list_is_refused() -> None:
    with pytest.raises(ConfigurationError) as err:
        Settings.from_env(
            {"FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT": "st", ENV_PREFIX + "BUILD_BACKEND": "k8s"}
        )
    assert str(err.value) == (
        "FOUNDRY_SERVICE_BUILD_BACKEND must be 'local' or 'azure_container_apps', got 'k8s'"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{", "FOUNDRY_SERVICE_AZURE_PREVIEW_CERTIFICATES must be a JSON object, got '{'"),
        ('["id"]', "FOUNDRY_SERVICE_AZURE_PREVIEW_CERTIFICATES must be a JSON object"),
        (
            '{"acme": 7}',
            "FOUNDRY_SERVICE_AZURE_PREVIEW_CERTIFICATES['acme'] must be a valid string",
        ),
    ],
)
def test_preview_certificates_must_be_an_object_of_strings(value: str, message: str) -> None:
    base = CASES[1].base
    with pytest.raises(ConfigurationError) as err:
        AzureSettings.from_env({**base, AZURE_PREFIX + "PREVIEW_CERTIFICATES": value})
    assert str(err.value).startswith(message)
    parsed = AzureSettings.from_env({**base, AZURE_PREFIX + "PREVIEW_CERTIFICATES": '{"*": "c"}'})
    assert parsed.certificate_for("any") == "c"


# --- required values and secrets --------------------------------------------------------------


def test_required_azure_variables_are_the_fields_without_defaults_and_refused_together() -> None:
    required = [
        f.name.upper()
        for f in dataclasses.fields(AzureSettings)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    assert list(REQUIRED) == required
    with pytest.raises(ConfigurationError) as err:
        # a bad optional value too: the missing ones are reported first, all in one message
        AzureSettings.from_env({AZURE_PREFIX + "BUILD_CPU": "abc", AZURE_PREFIX + "LOCATION": " "})
    assert str(
        err.value
    ) == "FOUNDRY_SERVICE_BUILD_BACKEND=azure_container_apps needs " + ", ".join(
        AZURE_PREFIX + name for name in REQUIRED
    )


SECRETS = [(c, b) for c, b in all_bindings() if b.secret]


def test_the_secret_fields_are_the_secret_settings() -> None:
    assert {v for _, b in SECRETS for v in b.variables} == set(SECRET_SETTINGS)


@pytest.mark.parametrize(("case", "binding"), SECRETS, ids=case_id)
def test_a_key_vault_reference_in_a_secret_counts_as_unset(case: Case, binding: Binding) -> None:
    default = next(f for f in dataclasses.fields(case.cls) if f.name == binding.field).default
    references = {variable: f" {KEY_VAULT_REFERENCE} " for variable in binding.variables}
    loaded = case.from_env({**case.base, **references})
    assert getattr(loaded, binding.field) == default
    if binding.variables[1:]:  # an unresolved first choice falls through to a resolved fallback
        resolved = {**references, binding.variables[-1]: "UseDevelopmentStorage=true"}
        loaded = case.from_env({**case.base, **resolved})
        assert getattr(loaded, binding.field) == "UseDevelopmentStorage=true"


def test_a_refused_secret_is_named_but_never_shown() -> None:
    @dataclass(frozen=True)
    class WithSecretNumber:
        pin: Annotated[int, Field(ge=1000)] = field(default=1234, metadata=env_var(secret=True))

    for value in ("12", "s3cret-value", "99999999999999999999999999x"):
        with pytest.raises(ConfigurationError) as err:
            load(WithSecretNumber, {"T_PIN": value}, prefix="T_")
        assert str(err.value).startswith("T_PIN must be")
        assert value not in str(err.value) and err.value.__cause__ is None


def test_computed_fields_are_validated_too() -> None:
    with pytest.raises(ConfigurationError, match=r"^Settings\.unresolved_secrets: "):
        load(Settings, {}, prefix=ENV_PREFIX, computed={"unresolved_secrets": 5})


def test_not_from_env_fields_are_never_read() -> None:
    @dataclass(frozen=True)
    class Fixed:
        version: str = field(default="v1", metadata=NOT_FROM_ENV)

    assert load(Fixed, {"T_VERSION": "v2"}, prefix="T_").version == "v1"
    assert bindings(Fixed, "T_") == ()


def test_the_readme_lists_no_variable_the_loader_does_not_read() -> None:
    read = {v for _, b in all_bindings() for v in b.variables}
    documented = set(re.findall(r"`(FOUNDRY_SERVICE_[A-Z0-9_]+)`", configuration_section()))
    assert documented <= read
