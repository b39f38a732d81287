"""What the fault tests inject and watch: a throttled model server, a store watcher that hashes every
blob it can see, a file-size limit on a process, a fault hook that kills a serve's engine thread,
and a `llamarun pull` child process.

The faults are real: a SIGKILL, writes refused by the kernel (RLIMIT_FSIZE: ``EFBIG``), a native
context freed under a running engine thread. Only the moment is chosen by the test.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from store.servers import LocalServer, file_handler

__all__ = [
    "ENGINE_FAULT_ENV",
    "StoreWatcher",
    "engine_fault_env",
    "file_size_limit",
    "model_server",
    "pull_process",
    "reaped",
    "sha",
    "store_leftovers",
]

ROOT = Path(__file__).resolve().parents[2]
ENGINE_FAULT_ENV = "LLAMARUN_TEST_ENGINE_FAULT"
CHUNK = 16384  # the model server sends the body in chunks of this size (tests/store/servers.py)

# Loaded by the serve process at start (Python imports `sitecustomize` from its path): when the
# trigger file appears, the engine thread frees its own llama.cpp context at the start of its next
# step (as a use-after-free bug or a failed native call would leave it), so that step raises and
# the thread dies the way a real fault kills it. The trigger is consumed: a reloaded engine runs.
_ENGINE_FAULT_HOOK = '''
import os
from pathlib import Path

_trigger = os.environ.get("{env}")
if _trigger:
    from llamarun.runtime.loop import EngineLoop

    _step = EngineLoop.step

    def step(self):
        try:
            Path(_trigger).unlink()
        except FileNotFoundError:
            pass
        else:
            self.ctx.close()
        return _step(self)

    EngineLoop.step = step
'''


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def model_server(data: bytes, throttle: float = 0.0) -> Iterator[LocalServer]:
    """``data`` at ``/tiny.gguf`` on 127.0.0.1:0 (Range and an ETag honoured), ``throttle`` seconds
    between chunks of 16 KiB."""
    with LocalServer(file_handler) as server:
        server.files["/tiny.gguf"] = data
        server.faults.throttle = throttle
        yield server


def store_leftovers(home: Path) -> dict[str, list[str]]:
    """The store's blobs and manifests, and the work files in ``partial/`` (lock files are kept on purpose)."""
    def names(folder: Path) -> list[str]:
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []

    return {"blobs": names(home / "blobs"), "manifests": names(home / "manifests"),
            "partial": [n for n in names(home / "partial") if not n.endswith(".lock")]}


class StoreWatcher(threading.Thread):
    """Looks at the store every few milliseconds while a fault happens: every blob file must hash to
    its name, and every model the store lists must name a blob that exists and hashes to its digest.
    ``violations`` says what was seen otherwise; ``looks`` how many times it looked."""

    def __init__(self, home: Path, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.home, self.interval = home, interval
        self.violations: list[str] = []
        self.looks = 0
        self.blobs_seen: set[str] = set()
        self._done = threading.Event()
        self._hashed: dict[tuple[str, int, int], str] = {}

    def _digest(self, path: Path) -> str | None:
        try:
            st = path.stat()
            key = (path.name, st.st_ino, st.st_mtime_ns)
            if key not in self._hashed:
                self._hashed[key] = sha(path.read_bytes())
            return self._hashed[key]
        except FileNotFoundError:
            return None  # removed between the listing and the read

    def look(self) -> None:
        from llamarun.store import ModelStore

        blobs = self.home / "blobs"
        for path in sorted(blobs.iterdir()) if blobs.is_dir() else []:
            digest = self._digest(path)
            self.blobs_seen.add(path.name)
            if digest is not None and path.name != f"sha256-{digest}":
                self.violations.append(f"{path.name} holds bytes of sha256 {digest}")
        for model in ModelStore(self.home).list():
            blob = blobs / model.digest.replace(":", "-")
            digest = self._digest(blob)
            if digest is None:
                self.violations.append(f"{model.name} is listed but its blob {blob.name} is missing")
            elif model.digest != f"sha256:{digest}":
                self.violations.append(f"{model.name} names {model.digest}, its blob holds sha256 {digest}")
        self.looks += 1

    def run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                self.look()
            except Exception as exc:  # noqa: BLE001 - a store that cannot be listed is a finding too
                self.violations.append(f"listing the store failed: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self._done.set()
        self.join(10)
        self.look()  # and once more at rest


@contextlib.contextmanager
def file_size_limit(pid: int, limit: int) -> Iterator[None]:
    """Files process ``pid`` writes can grow to ``limit`` bytes (its soft RLIMIT_FSIZE): a write past
    it fails with EFBIG, as on a full quota. Python ignores SIGXFSZ, so the write fails instead of
    killing the process. The hard limit is left alone, so the old limit can be put back."""
    before = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, before[1]))
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            resource.prlimit(pid, resource.RLIMIT_FSIZE, before)


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """``proc``, killed by its PID if it still runs when the block is left (a failed assertion)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _limit_files(limit: int | None) -> Callable[[], None] | None:
    if limit is None:
        return None

    def apply() -> None:  # in the child, before exec: both survive exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return apply


def pull_process(home: Path, *args: str, file_limit: int | None = None) -> subprocess.Popen[str]:
    """`llamarun pull ARGS` on the store at ``home`` (files limited to ``file_limit`` bytes if given)."""
    config = home / "config.toml"
    home.mkdir(parents=True, exist_ok=True)
    config.touch()
    env = {**os.environ, "LLAMARUN_HOME": str(home), "LLAMARUN_CONFIG": str(config), "PYTHONUNBUFFERED": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-m", "llamarun", "pull", "--quiet", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_limit_files(file_limit))


def engine_fault_env(folder: Path) -> tuple[dict[str, str], Path]:
    """The environment of a serve process that loads the engine fault hook, and its trigger file."""
    hook = folder / "engine-fault-hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(_ENGINE_FAULT_HOOK.format(env=ENGINE_FAULT_ENV))
    trigger = folder / "kill-the-engine"
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, ENGINE_FAULT_ENV: str(trigger)}, trigger
