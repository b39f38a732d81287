"""One load/generate/close cycle of the engine, and (run as a script) a loop of them for valgrind:
`make leakcheck` runs ``python tests/reliability/leakcheck.py N`` under memcheck."""

from __future__ import annotations

import sys
from pathlib import Path


def cycle(model_path: Path) -> None:
    """Load the model, generate a few tokens, close everything."""
    from llamarun.runtime import GenerationRequest, Runtime, RuntimeConfig, SyncClient
    from llamarun.types import SamplingParams

    with Runtime(model_path, RuntimeConfig(n_ctx=256, n_slots=2, max_queue=2, n_threads=1)) as runtime:
        result = SyncClient(runtime).generate(GenerationRequest(prompt="hello", max_tokens=4, ignore_eos=True,
                                                                 sampling=SamplingParams(temperature=0)))
        assert len(result.token_ids) == 4


def main() -> None:
    """``leakcheck.py N [--measure]``: N cycles; with --measure, one JSON line of the C heap in use and
    the RSS after the first, the middle and the last cycle."""
    import gc
    import json
    import os
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tinymodel import write_tiny_gguf

    from llamarun.engine import native_heap_bytes

    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    marks, heap, rss = {0, cycles // 2, cycles - 1}, [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = write_tiny_gguf(Path(tmp) / "tiny.gguf")
        for i in range(cycles):
            cycle(path)
            if "--measure" in sys.argv and i in marks:
                gc.collect()
                heap.append(native_heap_bytes())
                status = Path(f"/proc/{os.getpid()}/status").read_text()
                rss.append(int(status.split("VmRSS:")[1].split()[0]) / 1024)
    print(json.dumps({"cycles": cycles, "heap_bytes": heap, "rss_mib": rss}) if heap else f"{cycles} cycles done")


if __name__ == "__main__":
    main()
