"""The CPU a model runs on: the cores this process may use and which are idle, threads, the allocator.

- ``default_threads``: the cores that are idle when a run starts (sampled
  from /proc/stat), so that a run sharing the CPU with another program does
  not oversubscribe it; ``set_threads`` applies a choice to torch.
- ``keep_freed_memory``: glibc's malloc keeps freed memory for reuse (fewer
  page faults; ``KEPT_MEMORY_FACTOR`` more peak memory, which the tiling
  budget takes into account through ``memory_kept``).
"""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Dict, List, Mapping, Optional, Tuple

import torch

log = logging.getLogger("film")


def allowed_cpus() -> List[int]:
    """The CPUs this process may run on (its CPU affinity), not all the machine's."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return list(range(os.cpu_count() or 1))


def available_cores() -> int:
    """How many cores this process may run on (its CPU affinity)."""
    return len(allowed_cpus())


# The thread default counts the cores that are idle when a run starts, watched
# for IDLE_SAMPLE_SECONDS (/proc/stat's per-CPU idle time). Why: PyTorch's
# threads meet after every operation, so a thread on a core that another
# program holds makes the others wait for its time slice. Measured on 2 cores
# with one held by a busy loop, a x2 video job (the tiny test network at
# 320x240) took 64.5 s with 2 threads and 36.9 s with 1 (medians of 3;
# docs/performance.md, "Sharing the CPU"); on idle cores every thread
# counts. The idle time of the cores this process may use, summed over the
# sample, is rounded to the nearest whole number of cores: never fewer than
# 1 thread, never more than those cores. Not the load average: it follows
# the last minutes (it would still count a job that has just ended), and
# Linux counts in it tasks waiting for the disk, which leave a core idle.
# 0.15 s: about 15 clock ticks per core (USER_HZ 100), enough to tell a busy
# core from an idle one, and short beside loading a model. A program that
# starts after the run has started is not seen: give --threads then. Where
# there is no /proc/stat (macOS), the default is every core, as before.
IDLE_SAMPLE_SECONDS = 0.15
PROC_STAT = "/proc/stat"


def cpu_times(path: Optional[str] = None) -> Dict[int, Tuple[int, int]]:
    """Per CPU, (idle, total) clock ticks since boot, from ``path`` (PROC_STAT); {} where it cannot be read.

    Idle: idle + iowait. Total: user, nice, system, idle, iowait, irq,
    softirq and steal (the time a hypervisor gave the core to another
    machine is busy for us); guest time is already in user.
    """
    times = {}
    try:
        with open(path or PROC_STAT) as file:
            for line in file:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit():
                    ticks = [int(field) for field in fields[:8]]
                    times[int(name[3:])] = (sum(ticks[3:5]), sum(ticks))
    except (OSError, ValueError):
        return {}
    return times


def idle_cores(before: Mapping[int, Tuple[int, int]], after: Mapping[int, Tuple[int, int]],
               cpus: List[int]) -> Optional[float]:
    """How many of ``cpus`` were idle between two ``cpu_times`` (2.0: two whole cores); None if unknown."""
    idle, known = 0.0, False
    for cpu in cpus:
        if cpu in before and cpu in after:
            total = after[cpu][1] - before[cpu][1]
            if total > 0:
                idle += min(1.0, max(0.0, (after[cpu][0] - before[cpu][0]) / total))
                known = True
    return idle if known else None


def threads_for_idle_cores(idle: Optional[float], cores: int) -> int:
    """The thread default for ``idle`` idle cores (None: unknown) of the ``cores`` this process may use."""
    if idle is None:
        return cores
    return max(1, min(cores, math.floor(idle + 0.5)))


def default_threads() -> int:
    """$OMP_NUM_THREADS when it is set to a whole number (the user's word), else the cores idle now.

    "Idle now": see IDLE_SAMPLE_SECONDS; this call watches the CPUs that long
    (not with one core, or without /proc/stat).
    """
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        pass
    cpus = allowed_cpus()
    if len(cpus) == 1:
        return 1
    before = cpu_times()
    if before:
        time.sleep(IDLE_SAMPLE_SECONDS)
    idle = idle_cores(before, cpu_times(), cpus) if before else None
    threads = threads_for_idle_cores(idle, len(cpus))
    if threads < len(cpus):
        log.info(f"{threads} thread{'s' if threads != 1 else ''}: {len(cpus) - threads} of the {len(cpus)} cores "
                 f"this process may use {'is' if len(cpus) - threads == 1 else 'are'} busy with other programs "
                 f"(--threads N to choose)")
    return threads


def set_threads(threads: Optional[int]) -> int:
    """Use ``threads`` CPU threads for the model (None: ``default_threads()``); returns the number."""
    threads = threads or default_threads()
    torch.set_num_threads(threads)
    return threads


def keep_freed_memory() -> bool:
    """Makes glibc's malloc keep freed memory for reuse (process-wide); False where it cannot.

    By default every tensor above 32 MB is a fresh mmap, so each of the
    forward pass's large tensors costs page faults and the kernel's zeroing
    of its pages: measured 1.9 M faults and 3.5-4 s of system time per
    1280x704 Style forward pass (of ~17 s). Never returning memory to the
    kernel (no mmap, no trimming) lets later passes reuse it: no faults, 12%
    faster, at the price of a peak RSS about KEPT_MEMORY_FACTOR times higher
    (measured 3.03 -> 3.98 GB there). TensorFlow's own allocator does the same.
    """
    global _memory_kept
    if _memory_kept is None:
        import ctypes
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):  # not glibc
            _memory_kept = False
            return False
        m_trim_threshold, m_mmap_max = -1, -4  # malloc.h
        _memory_kept = mallopt(m_mmap_max, 0) == 1 and mallopt(m_trim_threshold, -1) == 1
    return _memory_kept


_memory_kept: Optional[bool] = None
# Peak RSS with freed memory kept over the default allocator's, for the
# memory estimate (measured 1.26 and 1.31 at 1280x704, Style network).
KEPT_MEMORY_FACTOR = 1.3


def memory_kept() -> bool:
    """Whether ``keep_freed_memory`` has taken effect in this process."""
    return bool(_memory_kept)

