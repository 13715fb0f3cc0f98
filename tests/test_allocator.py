import os
import platform

import numpy as np
import pytest

from speechae import allocator

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="malloc tuning is glibc-only"
)


@glibc_only
def test_thresholds_are_set_once_where_the_user_did_not_tune_malloc(monkeypatch):
    for name in [name for name in os.environ if name.startswith("MALLOC_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    allocator.retain_freed_memory.cache_clear()
    assert allocator.retain_freed_memory()
    assert allocator.retain_freed_memory.cache_info().hits == 0
    assert allocator.retain_freed_memory()
    assert allocator.retain_freed_memory.cache_info().hits == 1


def test_a_user_tuned_malloc_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    allocator.retain_freed_memory.cache_clear()
    assert not allocator.retain_freed_memory()
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")
    assert allocator._user_tuned()
    allocator.retain_freed_memory.cache_clear()


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@glibc_only
def test_free_memory_inside_the_heap_goes_back_to_the_system():
    allocator.retain_freed_memory()
    blocks = [np.ones(2**19) for _ in range(48)]  # 4 MB each: from the heap, under MMAP_THRESHOLD
    in_use_after_them = np.ones(2**19)
    del blocks
    before = resident_bytes()
    assert allocator.return_free_memory()
    assert resident_bytes() < before - 128 * 2**20
    assert in_use_after_them.sum() == 2**19
