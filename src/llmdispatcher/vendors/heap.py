"""Giving the memory of large vendor answers back to the operating system (glibc only).

glibc's malloc serves a block above ``M_MMAP_THRESHOLD`` with a mapping of its own, unmapped
when freed; smaller blocks come from the heap, whose free pages stay in the process (its RSS)
unless they are at the heap's top. The threshold starts at 128 KiB but moves: freeing a mapped
block raises it to that block's size, up to 32 MiB. So after the first large answer is freed,
later ones (up to 32 MiB) come from the heap, interleave with small long-lived objects, and
the process keeps its peak RSS for good: after a soak of gzip bombs the gateway stayed at
~530 MiB idle, against ~70 MiB without them (docs/reliability.md).

``tune`` (called once as the gateway starts) sets the threshold and the trim threshold
explicitly, which turns the moving threshold off: large buffers are always mapped, and freeing
them returns their memory at once. ``trim_soon`` (``malloc_trim`` a moment later) hands back
the free pages inside the heap too; the HTTP client asks for it when it lets go of an answer
of ``LARGE_ANSWER`` bytes or more. On other C libraries (musl, macOS) both do nothing: their
allocators return large blocks by themselves, or have no such call. A program that embeds the
dispatcher rather than running the gateway may call ``HEAP.tune()`` itself.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
from typing import Final

# Blocks from 256 KiB up are mapped: a socket read (256 KiB at most) and anything smaller stay
# on the heap, where they are cheap; every inflated step (1 MiB) and every joined answer is
# mapped and unmapped. Measured with the soak's heavy faults (docs/reliability.md).
MMAP_THRESHOLD: Final = 256 * 1024
# Free memory at the heap's top beyond this is returned as soon as it is freed (glibc's default
# is 128 KiB, but it moves up with the mmap threshold).
TRIM_THRESHOLD: Final = 4 * 1024 * 1024
# An answer this large, once let go, is followed by a trim ``TRIM_DELAY_S`` later: by then what
# its reader made of it (the parsed JSON, the gateway's reply) is usually freed as well.
LARGE_ANSWER: Final = 4 * 1024 * 1024
TRIM_DELAY_S: Final = 1.0
# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - present on glibc only
    except (OSError, AttributeError):
        return None
    return libc


class Heap:
    """The C heap of this process, through glibc's ``mallopt`` and ``malloc_trim``."""

    def __init__(self) -> None:
        self._libc: ctypes.CDLL | None = None
        self._looked = False
        self._on: asyncio.AbstractEventLoop | None = None  # the loop a trim is due on
        self.trims = 0

    def _glibc(self) -> ctypes.CDLL | None:
        if not self._looked:  # on first use, not at import
            self._libc, self._looked = _glibc(), True
        return self._libc

    def tune(self) -> bool:
        """Fix the mmap and trim thresholds (unless the environment set them, as glibc's
        ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` do); False off glibc."""
        libc = self._glibc()
        if libc is None:
            return False
        if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
            libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        return True

    def trim_soon(self, loop: asyncio.AbstractEventLoop, delay: float = TRIM_DELAY_S) -> None:
        """``malloc_trim`` in ``delay`` seconds, unless one is due already (a burst of large
        answers costs one walk of the heap, a few milliseconds)."""
        if self.due or self._glibc() is None:
            return
        self._on = loop
        loop.call_later(delay, self._trim)

    @property
    def due(self) -> bool:
        """A trim is scheduled (on a loop that still runs: one closed meanwhile never will)."""
        return self._on is not None and not self._on.is_closed()

    def _trim(self) -> None:
        self._on = None
        libc = self._glibc()
        if libc is not None:
            libc.malloc_trim(0)
            self.trims += 1


# One per process, as the C heap is.
HEAP: Final = Heap()
