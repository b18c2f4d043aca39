"""glibc's handling of the model's large blocks, checked in fresh processes (its state is per process)."""

import subprocess
import sys

import pytest

from cmalign.process import _LIBC

PROBE = """
import ctypes, sys
import numpy as np
from cmalign.process import _LIBC, map_large_blocks

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]

_LIBC.mallinfo2.restype = Info
if sys.argv[1] == "mapped":
    map_large_blocks()
big = np.ones(16 << 20, np.uint8)  # released: glibc's default raises its threshold to 16 MiB
del big
before = _LIBC.mallinfo2().hblkhd
block = np.ones(5 << 20, np.uint8)   # an activation-sized block
print(_LIBC.mallinfo2().hblkhd - before >= 5 << 20)
"""


@pytest.mark.skipif(_LIBC is None or not hasattr(_LIBC, "mallinfo2"), reason="glibc 2.33+ only")
def test_after_map_large_blocks_an_activation_sized_block_is_mapped_not_taken_from_the_heap():
    def mapped(mode):
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return out.stdout.strip() == "True"

    assert not mapped("default")  # the heap would keep it, resident, once freed
    assert mapped("mapped")       # returned to the system the moment it is freed
