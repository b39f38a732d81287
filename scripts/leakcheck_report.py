"""Sum valgrind memcheck's definitely-lost records whose allocation stack passes through llamarun's
native code (libllama, libggml, _fastdraw); CPython's own records are not counted (they are what a
suppressions file for CPython would hide). Exit 1 when that sum is not zero."""

import re
import sys

OURS = ("libllama", "libggml", "_fastdraw")
text = open(sys.argv[1]).read()
records = re.split(r"\n==\d+== \n", text)
lost = [r for r in records if "definitely lost" in r and any(o in r for o in OURS)]
total = sum(int(re.search(r"([\d,]+) bytes", r).group(1).replace(",", "")) for r in lost)
print(f"definitely lost from llamarun's native calls: {total} bytes in {len(lost)} records")
for r in lost[:5]:
    print(r[:2000])
sys.exit(1 if total else 0)
