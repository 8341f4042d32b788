from __future__ import annotations

import hmac

import pytest

from api.auth import Authenticator, parse_keys
from shared.errors import ConfigurationError


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_no_keys_configured_refuses_everything() -> None:
    auth = Authenticator("")
    assert not auth.configured
    assert auth.authenticate(bearer("")) is None
    assert auth.authenticate(bearer("anything")) is None
    assert Authenticator(" , ,").authenticate(bearer("")) is None


def test_plain_key_list_keeps_todays_behaviour() -> None:
    auth = Authenticator("old, new")
    for key in ("old", "new"):
        principal = auth.authenticate(bearer(key))
        assert principal is not None
        assert principal.allows("jobs:write") and principal.allows("jobs:read")
        assert principal.may_see("anyone", None) and principal.may_see("x", "org")
    assert auth.authenticate(bearer("other")) is None
    assert auth.authenticate({"authorization": "bearer old"}) is None  # literal "Bearer "
    assert auth.authenticate({"authorization": "old"}) is None
    assert auth.authenticate({}) is None


def test_scoped_and_restricted_keys() -> None:
    auth = Authenticator("r|scopes=jobs:read,a|owner=alice+bob|org=acme,root|scopes=admin")
    reader = auth.authenticate(bearer("r"))
    assert reader and reader.allows("jobs:read") and not reader.allows("jobs:write")
    alice = auth.authenticate(bearer("a"))
    assert alice and alice.may_see("bob", "acme") and not alice.may_see("carol", "acme")
    assert not alice.may_see("alice", None) and not alice.may_see("alice", "other")
    root = auth.authenticate(bearer("root"))
    assert root and root.allows("jobs:write") and root.allows("admin")


@pytest.mark.parametrize("raw", ["k|scopes=jobs:delete", "k|scopes=", "k|colour=red", "|owner=a"])
def test_malformed_key_limits_are_configuration_errors(raw: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_keys(raw)


def test_every_key_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr("api.auth.hmac.compare_digest", counting)
    auth = Authenticator("first,second,third")
    assert auth.authenticate(bearer("first")) is not None
    assert len(calls) == 3


def test_key_id_is_not_the_key() -> None:
    principal = Authenticator("super-secret").authenticate(bearer("super-secret"))
    assert principal is not None and "secret" not in principal.key_id and len(principal.key_id) == 8
