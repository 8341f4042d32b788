"""The driver's concurrency, memory bound and persistence (on a tiny app, no storage needed)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from devhost.driver import Driver
from devhost.instance_store import InstanceStore
from tests.devhost import tiny_app


def test_client_calls_do_not_wait_for_a_running_activity() -> None:
    driver = Driver(tiny_app.app, realtime=True)
    driver.start_new("napper", "slow", 1.5)
    worker = threading.Thread(target=driver.step)  # runs the 1.5 s activity
    worker.start()
    time.sleep(0.2)  # the activity is running now
    assert driver.instances["slow"].in_flight
    began = time.monotonic()
    driver.start_new("echo", "quick", {"n": 1})
    driver.status("slow")
    driver.raise_event("quick", "ignored", None)
    elapsed = time.monotonic() - began
    worker.join()
    assert elapsed < 0.5, elapsed  # it held the lock for 1.5 s before
    assert driver.instances["quick"].output == {"n": 1}
    driver.run_until_idle()
    assert driver.instances["slow"].output == {"slept": 1.5}


def test_a_completion_for_a_terminated_instance_is_dropped() -> None:
    driver = Driver(tiny_app.app)
    driver.start_new("napper", "n1", 0)
    [(instance_id, act)] = driver.take_ready()
    outcome = driver.execute(act)
    assert driver.terminate("n1", "operator") is True
    driver.complete(instance_id, act, outcome)
    inst = driver.instances["n1"]
    assert inst.status == "Terminated" and inst.output == "operator"
    # Started again under the same id, an old completion does not leak into the new run.
    driver.start_new("napper", "n1", 0)
    driver.complete(instance_id, act, outcome)
    assert driver.instances["n1"].status == "Running"
    assert len(driver.instances["n1"].ready) == 1


@pytest.mark.parametrize("persisted", [True, False])
def test_finished_instances_are_bounded_in_memory(tmp_path: Path, persisted: bool) -> None:
    store = InstanceStore(tmp_path / "durable") if persisted else None
    driver = Driver(tiny_app.app, store=store, max_finished=2)
    driver.start_new("waiter", "running", None)
    for n in range(4):
        driver.start_new("echo", f"e{n}", n)
    assert set(driver.instances) == {"running", "e2", "e3"}  # running ones are never evicted
    evicted = driver.status("e0")
    if persisted:  # answered from disk, and cached again as the most recently used
        assert evicted is not None and evicted.status == "Completed" and evicted.output == 0
        assert set(driver.instances) == {"running", "e3", "e0"}
    else:
        assert evicted is None
    assert driver.purge("e3") == 1 and driver.status("e3") is None


def test_a_new_driver_resumes_running_instances_from_the_store(tmp_path: Path) -> None:
    store = InstanceStore(tmp_path / "durable")
    first = Driver(tiny_app.app, store=store)
    first.start_new("waiter", "w", None)
    first.start_new("napper", "n", 0.01)
    first.take_ready()  # handed out, never completed: the process "crashes" mid-activity
    first.start_new("echo", "done", "x")
    second = Driver(tiny_app.app, store=InstanceStore(tmp_path / "durable"))
    assert sorted(second.resume_from_store()) == ["n", "w"]
    assert second.status("done").output == "x"  # finished ones stay answerable
    second.run_until_idle()  # the lost activity runs again (at-least-once)
    assert second.instances["n"].output == {"slept": 0.01}
    assert second.raise_event("w", "go", 5) is True
    assert second.instances["w"].output == {"got": 5}
    third = Driver(tiny_app.app, store=InstanceStore(tmp_path / "durable"))
    assert third.resume_from_store() == []


def test_the_store_keeps_the_newer_copy_after_a_crash_between_folders(tmp_path: Path) -> None:
    store = InstanceStore(tmp_path)
    store.save("i", {"v": 1}, running=True)
    time.sleep(0.01)
    (store.finished / "i.json").write_text('{"v": 2}')  # crash before the running copy went
    assert store.load("i") == {"v": 2}
    assert not (store.running / "i.json").exists()
    assert list(store.load_running()) == []
    with pytest.raises(ValueError, match="cannot name a file"):
        store.save("../x", {}, running=True)
