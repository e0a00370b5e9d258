"""The local pool's workers: the allocator settings of :data:`studies.core.executors.WORKER_ENV`."""

from __future__ import annotations

import ctypes
import platform

import numpy as np
import pytest

from studies.core.executors import make_executor

LARGE_ELEMENTS = 1 << 23
"""A 64 MiB float64 array: above glibc's largest mmap threshold (32 MiB), so mapped by default."""


class _MallocInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _has_mallinfo2() -> bool:
    name, version = platform.libc_ver()
    return name == "glibc" and tuple(int(part) for part in version.split(".")[:2]) >= (2, 33)


def mapped_blocks_with_large_array() -> int:
    """glibc's count of mmap-served blocks (``mallinfo2().hblks``) while a 64 MiB array is alive."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallocInfo2
    block = np.ones(LARGE_ELEMENTS)
    mapped = libc.mallinfo2().hblks
    del block
    return mapped


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc ≥ 2.33 (mallinfo2)")
def test_pool_workers_serve_large_arrays_from_the_kept_heap():
    """In this process (glibc's defaults) a 64 MiB array is an mmap block, page-faulted and zeroed
    afresh on every allocation; in a pool worker (WORKER_ENV) it comes from the heap, which keeps
    freed memory, so no block is mapped. Fails if the workers lose the two MALLOC_ settings."""
    assert mapped_blocks_with_large_array() >= 1
    with make_executor("local", 1) as (executor, _):
        assert executor.submit(mapped_blocks_with_large_array).result() == 0
