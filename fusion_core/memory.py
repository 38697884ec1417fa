"""Process-wide memory settings for the commands that allocate many large short-lived arrays."""
from __future__ import annotations

import ctypes


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the kernel (a process-wide setting).

    A learned method at 640×480 allocates and frees hundreds of 20–80 MB feature tensors per pair. glibc
    serves each with a fresh ``mmap`` (anything above 32 MB always is) and unmaps it on free, so every
    tensor is zero-filled page by page again: DIDFuse spent as much kernel time in page faults (4 M minor
    faults, sys ≈ user) as in arithmetic. With mmap off and trimming raised, the heap is reused and the
    faults vanish. ``score`` is the same story at a smaller scale: each metric allocates and frees 3.5 MB
    float64 planes (a 576×768 image), and the fault time was 15 % of its run (sys 2.5 s of 17 s on 42 pairs
    scored nine times over; 0.35 s with this setting). Returns False where the C library is not glibc (nothing
    changed). Called by the ``fuse``, ``score`` and ``compare`` commands and by the experiment engine before it
    fuses (NestFuse at 768×576 on one thread, measured on a loaded 2-core machine: 20 s per pair with sys 5.5 s,
    9.5 s with sys 1.2 s); a long-lived process that does little of either need not call it.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on (no ldconfig search)
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 1 << 30))
