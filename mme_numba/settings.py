"""Tunables of the package, in one place, one section per layer.

Kernels: none of these changes results: a lock-step kernel computes every chain (or row) with
exactly the arithmetic of the one-at-a-time kernel, whatever the number of lanes, so they
only trade speed for memory. Measured with ``benchmarks/run.py`` (``docs/performance.md``).
"""

__all__ = ["LANES_MIN", "LANES_MAX", "TILE_BYTES", "PARALLEL_CHUNK", "SCAN_LANES",
           "SCAN_STATE_BYTES"]

# --- kernels ---------------------------------------------------------------------------

#: Fewest and most inputs (chains or rows) evaluated in lock-step by one thread. Lanes are
#: the innermost loop index, so LLVM vectorizes across them; a multiple of 8 fills
#: AVX-512 registers of float64 exactly.
LANES_MIN = 8
LANES_MAX = 64

#: Bytes of one lock-step activation buffer ``(width, lanes)`` float64 to aim for, so that
#: the two ping-pong buffers stay in a core's L2 cache; wide networks get fewer lanes (the
#: paper's digit CNN, width 1024: 32 lanes).
TILE_BYTES = 256 * 1024

#: Blocks handed to a thread at a time (numba's dynamic scheduling, ``set_parallel_chunksize``)
#: instead of one fixed share per thread: on a shared machine the OS often deschedules one
#: thread, and with static shares the others then wait for it at the end of every call.
PARALLEL_CHUNK = 1

#: Most chains per lock-step block of the systematic-scan sampler (``kernels/moves/scan.py``).
#: Every step has a fixed cost shared by the block's lanes (window bookkeeping, the set-up of
#: each short loop over lanes), so more lanes pay as long as the kept state stays small.
SCAN_LANES = 256

#: Kept state per scan block (``rows x lanes`` float64, and as much again for a proposal) to
#: stay within: a block with more state halves its lanes until it fits, down to 64. It only
#: bounds memory: more lanes barely pay on large images (``docs/performance.md``).
SCAN_STATE_BYTES = 40 * 1024 * 1024
