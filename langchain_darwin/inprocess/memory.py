"""Give freed host memory back to the operating system between decoding periods.

A search allocates and frees a batch-sized cache every period, each a little longer than the
last; glibc keeps the freed blocks in its heap, where a longer batch does not fit, so resident
memory climbs to about twice what is live (measured: 360 MB resident for 180 MB live at the
end of a 256-token search). ``malloc_trim`` returns those blocks. Elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable

import torch


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:  # malloc_trim(size_t pad) -> int
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


def release_freed_host_memory(device: torch.device | str) -> None:
    """After a period on the CPU, return the heap's free pages (a few milliseconds)."""
    if torch.device(device).type != "cpu":
        return
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
