"""Read a valgrind memcheck log of `make leakcheck`: sum the definitely-lost records whose allocation
stack passes through llamarun's native code (libllama, libggml, _fastdraw), and count every other
error record (invalid reads and writes, uninitialised values, syscall params...) that names it. CPython's own records are not
counted (tests/reliability/valgrind-python.supp hides the known ones). Exit 1 when either is not zero.

    python scripts/leakcheck_report.py leakcheck.log
"""

from __future__ import annotations

import re
import sys

OURS = ("libllama", "libggml", "_fastdraw")
# "24 bytes in 1 blocks are definitely lost" or "264 (48 direct, 216 indirect) bytes in 3 blocks ..."
LOST = re.compile(r"([\d,]+) (?:\(([\d,]+) direct, [\d,]+ indirect\) )?bytes in [\d,]+ blocks are definitely lost")
LEAK_RECORD = re.compile(r"are (?:definitely|indirectly|possibly) lost|still reachable")


def records(text: str) -> list[str]:
    """The log's records: the blocks of lines between valgrind's empty ``==PID== `` lines."""
    return [r for r in re.split(r"\n==\d+== ?\n", text) if r.strip()]


def definitely_lost(record: str) -> int:
    """The bytes a definitely-lost record lost itself (its direct bytes), 0 for another record."""
    found = LOST.search(record)
    if not found:
        return 0
    return int((found.group(2) or found.group(1)).replace(",", ""))


def main() -> int:
    ours = [r for r in records(open(sys.argv[1]).read()) if any(o in r for o in OURS)]
    lost = [r for r in ours if definitely_lost(r)]
    errors = [r for r in ours if not LEAK_RECORD.search(r)]  # any other error in our code: invalid reads and
    # writes, uninitialised values, bad syscall params, overlaps, invalid frees or jumps
    total = sum(definitely_lost(r) for r in lost)
    print(f"definitely lost from llamarun's native calls: {total} bytes in {len(lost)} records; "
          f"other memory errors in them: {len(errors)}")
    for r in (lost + errors)[:5]:
        print(r[:2000])
    return 1 if total or errors else 0


if __name__ == "__main__":
    sys.exit(main())
