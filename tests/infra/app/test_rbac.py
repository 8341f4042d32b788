"""infra/app/rbac.bicep: who may do what, for a user deploy and a service-principal deploy alike."""

from __future__ import annotations

import re

from tests.infra import bicep

RBAC = bicep.load(bicep.INFRA / "app" / "rbac.bicep")
ASSIGNMENT = "Microsoft.Authorization/roleAssignments@2022-04-01"


def _assignments() -> dict[str, dict[str, str]]:
    return {
        s: r.body["properties"]
        for s, r in RBAC.resources.items()
        if r.type == ASSIGNMENT and not r.existing
    }


def test_deployer_principal_type_is_a_parameter() -> None:
    param = RBAC.params["principalType"]
    assert param.default == "'User'"
    assert set(re.findall(r"'(\w+)'", param.decorators["allowed"])) == {
        "User",
        "Group",
        "ServicePrincipal",
    }
    deployer = [p for p in _assignments().values() if p["principalId"] == "principalId"]
    assert deployer, "the deploying principal gets troubleshooting access"
    assert all(p["principalType"] == "principalType" for p in deployer)
    assert "principalType: 'User'" not in RBAC.text


def test_managed_identities_are_always_service_principals() -> None:
    others = [p for p in _assignments().values() if p["principalId"] != "principalId"]
    assert len(others) >= 6
    assert all(p["principalType"] == "'ServicePrincipal'" for p in others)


def test_custom_role_is_unique_per_subscription_and_resource_group() -> None:
    role = RBAC.resources["orchestratorRole"]
    assert role.type.startswith("Microsoft.Authorization/roleDefinitions@")
    seed = role.body["name"]
    assert seed.startswith("guid(") and "subscription().id" in seed
    assert "resourceGroup().id" in seed
    # Display names are unique per tenant too, so they carry both as well.
    display = role.body["properties"]["roleName"]
    assert "${subscription().subscriptionId}" in display and "${resourceGroup().name}" in display
    assert role.body["properties"]["assignableScopes"] == "[ resourceGroup().id ]"


def test_every_assignment_name_is_deterministic() -> None:
    # guid(scope, principal, role): re-deploying finds the same assignment instead of a conflict.
    for symbol, resource in RBAC.resources.items():
        if resource.type == ASSIGNMENT and not resource.existing:
            assert resource.body["name"].startswith("guid("), symbol
