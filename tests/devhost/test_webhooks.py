"""The management API on the wire: the system key is required on every route (as on Azure),
and status codes follow the extension's ``HttpApiHandler``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from devhost.driver import Driver
from devhost.loopback import DurableHttpHost
from devhost.webhooks import BASE
from tests.devhost import tiny_app

KEY = "system-key-for-tests-0123456789"


@pytest.fixture
def driver() -> Driver:
    return Driver(tiny_app.app)


@pytest.fixture
def http(driver: Driver) -> Iterator[httpx.Client]:
    with (
        DurableHttpHost(driver, system_key=KEY) as host,
        httpx.Client(base_url=host.base_url + BASE, timeout=10) as client,
    ):
        yield client


ROUTES = [
    ("POST", "/orchestrators/waiter/i1"),
    ("GET", "/instances/i1"),
    ("GET", "/instances"),
    ("DELETE", "/instances/i1"),
    ("POST", "/instances/i1/raiseEvent/go"),
    ("POST", "/instances/i1/terminate"),
    ("POST", "/instances/i1/suspend"),
    ("GET", "/entities/x/y"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "credentials",
    [{}, {"params": {"code": "wrong"}}, {"headers": {"x-functions-key": ""}}, {"auth": ("u", "")}],
    ids=["none", "wrong-code", "empty-header", "empty-basic"],
)
def test_every_route_refuses_without_the_key(http, driver, method, path, credentials) -> None:
    driver.start_new("waiter", "i1", None)
    response = http.request(method, path, json={}, **credentials)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert driver.instances["i1"].is_running  # nothing happened to it
    assert KEY not in response.text


@pytest.mark.parametrize(
    "credentials",
    [{"params": {"code": KEY}}, {"headers": {"x-functions-key": KEY}}, {"auth": ("any", KEY)}],
    ids=["code", "x-functions-key", "basic"],
)
def test_the_key_is_accepted_in_each_place_the_host_accepts_it(http, driver, credentials) -> None:
    response = http.post("/orchestrators/waiter/i2", json={"a": 1}, **credentials)
    assert response.status_code == 202, response.text
    assert response.json()["id"] == "i2"
    assert response.headers["Location"].endswith(
        "/instances/i2?taskHub=foundrydev&connection=Storage"
    )
    assert KEY not in response.text  # links are given without the key
    assert driver.instances["i2"].input == {"a": 1}


def test_status_codes_follow_the_extension(http, driver) -> None:
    key = {"x-functions-key": KEY}
    assert http.get("/instances/nope", headers=key).status_code == 404
    assert http.post("/orchestrators/missing/m1", headers=key).status_code == 400
    assert http.post("/orchestrators/waiter/w1", headers=key).status_code == 202
    assert http.post("/orchestrators/waiter/w1", headers=key).status_code == 409
    running = http.get("/instances/w1", headers=key)
    assert running.status_code == 202 and running.json()["runtimeStatus"] == "Running"
    assert "historyEvents" not in running.json()
    assert "historyEvents" in http.get("/instances/w1?showHistory=true", headers=key).json()
    assert http.delete("/instances/w1", headers=key).status_code == 412
    assert http.post("/instances/w1/raiseEvent/go", headers=key, content=b"1").status_code == 400
    assert http.post("/instances/w1/raiseEvent/go", headers=key, json=7).status_code == 202
    driver.run_until_idle()
    done = http.get("/instances/w1", headers=key)
    assert done.status_code == 200 and done.json()["output"] == {"got": 7}
    assert done.json()["createdTime"].endswith("Z")
    assert http.post("/instances/w1/raiseEvent/go", headers=key, json=1).status_code == 410
    assert http.post("/instances/w1/terminate?reason=x", headers=key).status_code == 410
    assert http.post("/instances/nope/terminate", headers=key).status_code == 404
    assert http.post("/instances/w1/rewind", headers=key).json()["error"] == "not_implemented"
    listed = http.get("/instances?runtimeStatus=Completed", headers=key).json()
    assert [s["instanceId"] for s in listed] == ["w1"]
    assert http.delete("/instances/w1", headers=key).json() == {"instancesDeleted": 1}
    assert http.delete("/instances/w1", headers=key).status_code == 404
