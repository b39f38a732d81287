"""The model manager: load on first use, reload on new settings, LRU within limits, keep_alive."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamarun.errors import InsufficientMemoryError, InvalidParameterError, ModelNotFoundError, OverloadedError
from llamarun.runtime import LoadOptions, ManagerConfig, ModelManager, ModelSource, RuntimeConfig
from tinymodel import write_tiny_gguf
from waiting import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {name: write_tiny_gguf(folder / f"{name}.gguf", seed=i) for i, name in enumerate("abc")}


def _resolver(models: dict[str, Path]):
    def resolve(name: str) -> ModelSource:
        key = name.split(":")[0]
        if key not in models:
            raise ModelNotFoundError(f"model {name!r} not found")
        return ModelSource(f"{key}:latest", models[key], "sha256:" + "0" * 64)

    return resolve


def _fixed_planner(size: int):
    def plan(source: ModelSource, options: LoadOptions, config: ManagerConfig, budget: int):
        if size > budget:
            raise InsufficientMemoryError(f"{source.name} needs {size} bytes, budget {budget}")
        return RuntimeConfig(n_ctx=options.n_ctx or 256, n_slots=1, n_threads=options.n_threads or 1), size

    return plan


@pytest.fixture()
def make(models: dict[str, Path]) -> Iterator:
    made: list[ModelManager] = []

    def build(planner=None, **config) -> ModelManager:
        manager = ModelManager(ManagerConfig(**{"n_threads": 1, "n_ctx": 256, "n_slots": 1, **config}),
                               resolve=_resolver(models), planner=planner)
        made.append(manager)
        return manager

    yield build
    for manager in made:
        manager.close()


def _loaded(manager: ModelManager) -> set[str]:
    return {s.name for s in manager.status()}


def test_loads_once_for_concurrent_first_use(make) -> None:
    manager = make()  # the real planner: hardware profile + GGUF facts
    leases = []
    threads = [threading.Thread(target=lambda: leases.append(manager.acquire("a"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(leases) == 4 and len({id(lease.runtime) for lease in leases}) == 1
    assert manager.counters["loads"] == 1
    (status,) = manager.status()
    assert status.in_use == 4 and status.config.n_ctx >= 256 and status.size_bytes > 0
    for lease in leases:
        lease.release()
    assert manager.status()[0].in_use == 0
    with pytest.raises(ModelNotFoundError):
        manager.acquire("zzz")


def test_least_recently_used_goes_first(make) -> None:
    manager = make(_fixed_planner(100), max_loaded_models=2)
    manager.acquire("a").release()
    manager.acquire("b").release()
    manager.acquire("a").release()  # b is now the least recently used
    manager.acquire("c").release()
    assert _loaded(manager) == {"a:latest", "c:latest"}
    assert manager.counters["evictions"] == 1


def test_memory_budget_evicts_and_refuses(make) -> None:
    manager = make(_fixed_planner(100), memory_budget=250, max_loaded_models=10)
    for name in "abc":
        manager.acquire(name).release()
    assert _loaded(manager) == {"b:latest", "c:latest"}  # a third would exceed 250 bytes
    too_big = make(_fixed_planner(300), memory_budget=250)
    with pytest.raises(InsufficientMemoryError):
        too_big.acquire("a")


def test_busy_models_are_not_evicted(make) -> None:
    manager = make(_fixed_planner(100), max_loaded_models=2)
    a, b = manager.acquire("a"), manager.acquire("b")
    with pytest.raises(OverloadedError):
        manager.acquire("c", timeout=0.3)
    threading.Timer(0.3, a.release).start()
    c = manager.acquire("c", timeout=30)  # waits for a to be free, then unloads it
    assert _loaded(manager) == {"b:latest", "c:latest"}
    b.release()
    c.release()


def test_reload_when_settings_change(make) -> None:
    manager = make(_fixed_planner(100), allow_request_reload=True)  # the operator allows request reloads
    first = manager.acquire("a", LoadOptions(n_ctx=256))
    first.release()
    same = manager.acquire("a")  # no preference: whatever is loaded
    assert same.runtime is first.runtime
    same.release()
    bigger = manager.acquire("a", LoadOptions(n_ctx=512))
    assert bigger.runtime is not first.runtime and bigger.config.n_ctx == 512
    bigger.release()
    assert manager.counters["loads"] == 2


def test_keep_alive(make) -> None:
    manager = make(_fixed_planner(100))
    manager.acquire("a", keep_alive=0.2).release()
    manager.acquire("b", keep_alive=-1).release()
    wait_until(lambda: "a:latest" not in _loaded(manager))
    assert _loaded(manager) == {"b:latest"}
    assert next(s for s in manager.status()).expires_at is None  # kept forever
    lease = manager.acquire("b", keep_alive=0)
    time.sleep(0.2)
    assert "b:latest" in _loaded(manager)  # in use: not unloaded
    lease.release()
    wait_until(lambda: not _loaded(manager))
    assert not _loaded(manager)


def test_closed_manager_refuses(make) -> None:
    manager = make(_fixed_planner(100))
    lease = manager.acquire("a")
    manager.close()
    with pytest.raises(OverloadedError):
        manager.acquire("a")
    lease.release()  # harmless after close


def test_a_request_cannot_reload_by_default(make) -> None:
    manager = make(_fixed_planner(100))  # allow_request_reload is off by default
    with pytest.raises(InvalidParameterError) as err:
        manager.acquire("a", LoadOptions(n_ctx=512))  # not loaded yet: checked against the server's plan
    assert err.value.field == "n_ctx" and "256" in str(err.value) and "allow_request_reload" in str(err.value)
    assert not _loaded(manager)
    with manager.acquire("a", LoadOptions(n_ctx=128)) as lease:  # at least the context asked for
        assert lease.config.n_ctx == 256
    with pytest.raises(InvalidParameterError) as err:
        manager.acquire("a", LoadOptions(n_threads=2, labels=(("n_threads", "options.num_thread"),)))
    assert err.value.field == "options.num_thread"
    assert manager.counters["loads"] == 1


def test_request_load_options_are_bounded(make) -> None:
    manager = make(_fixed_planner(100), allow_request_reload=True)
    with pytest.raises(InvalidParameterError) as err:
        manager.acquire("a", LoadOptions(n_threads=1000))
    assert err.value.field == "n_threads" and "usable cores" in str(err.value)
    with pytest.raises(InvalidParameterError) as err:  # auto ceiling: max(n_ctx 256, trained 2048)
        manager.acquire("a", LoadOptions(n_ctx=4096))
    assert err.value.field == "n_ctx" and "2048" in str(err.value)
    ceiling = make(_fixed_planner(100), allow_request_reload=True, max_request_ctx=300)
    with pytest.raises(InvalidParameterError):
        ceiling.acquire("a", LoadOptions(n_ctx=512))
    assert not _loaded(manager) and not _loaded(ceiling)


def test_default_budget_keeps_the_hw_headroom(make) -> None:
    from llamarun.hardware import detect_memory

    manager = make()
    before = detect_memory()
    budget = manager._budget()
    after = detect_memory()
    assert min(before.budget, after.budget) - (64 << 20) <= budget <= max(before.budget, after.budget) + (64 << 20)
    assert budget < max(before.usable, after.usable)


def test_keep_alive_out_of_range_and_forever(make) -> None:
    manager = make(_fixed_planner(100))
    for huge in (1e30, 1e20, float("inf")):
        with pytest.raises(InvalidParameterError) as err:
            manager.acquire("a", keep_alive=huge)
        assert err.value.field == "keep_alive"
    manager.acquire("a", keep_alive=-1e30).release()  # any negative value: forever
    assert manager.status()[0].expires_at is None


def test_the_reaper_survives_an_error(make) -> None:
    manager = make(_fixed_planner(100))
    real_close = manager._close_entry
    failures = []

    def close_once(entry, timeout):  # the first unload fails, as a broken engine might
        if not failures:
            failures.append(entry.source.name)
            raise RuntimeError("unload failed")
        real_close(entry, timeout)

    manager._close_entry = close_once  # type: ignore[method-assign]
    manager.acquire("a", keep_alive=0.1).release()
    wait_until(lambda: failures)
    assert failures == ["a:latest"]
    manager.acquire("b", keep_alive=0.1).release()
    wait_until(lambda: not _loaded(manager))
    assert not _loaded(manager) and manager._reaper is not None and manager._reaper.is_alive()
