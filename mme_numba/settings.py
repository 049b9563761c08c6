"""Every tunable of the package, in one place, one section per layer; modules import their
numbers from here.

Kernels: none of these changes results: a lock-step kernel computes every chain (or row) with
exactly the arithmetic of a one-lane block, whatever the number of lanes, so they only trade
speed for memory. Measured with ``benchmarks/run.py`` (``docs/performance.md``).

Training: changing a value changes behaviour (and the pinned hashes of
``tests/test_pin_orchestration.py``): each line says what the number does and why it is what
it is.
"""

# ----------------------------------------------------------------------------- kernels

#: Fewest and most inputs (chains or rows) evaluated in lock-step by one thread. Lanes are
#: the innermost loop index, so LLVM vectorizes across them; a multiple of 8 fills
#: AVX-512 registers of float64 exactly.
LANES_MIN = 8
LANES_MAX = 64

#: ``kernels/tune.py`` measures the best lanes cap of the sweeps on each host at first use;
#: a cap other than LANES_MAX is taken only when it was at least this much faster (a noisy
#: measurement keeps the default). On a Zen 3 host 128 lanes ran 1.06-1.14x faster than 64.
TUNE_MIN_GAIN = 1.05

#: Bytes of one lock-step activation buffer ``(width, lanes)`` to aim for; wide networks get
#: fewer lanes (the paper's digit CNN, width 1024: 128 lanes in float64, 256 in float32).
#: Measured on two kinds of CPU (``docs/performance.md``): 1 MiB was the fastest tile on a
#: Zen 3 (512 KiB L2) and within 3 % of the fastest (2 MiB) on a Xeon with 2 MiB L2; the
#: earlier 256 KiB was 1.3-1.7x slower on both.
TILE_BYTES = 1024 * 1024

#: Most rows per lock-step block of the energy and observable batches (sweeps have their
#: measured cap, ``kernels/tune.py``). 256 was the fastest on both kinds of CPU measured.
BATCH_LANES_MAX = 256

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

# ---------------------------------------------------------------------------- training
#: ``sweeps="auto"``: the range of the sweep count per epoch.
SWEEPS_MIN, SWEEPS_MAX = 10, 100
#: Lag correlation (chain energies before vs after an epoch's sweeps) above which the count
#: grows by SWEEPS_GROW, and below which it shrinks by SWEEPS_SHRINK.
LAG_HIGH, LAG_LOW = 0.3, 0.1
SWEEPS_GROW, SWEEPS_SHRINK = 1.25, 0.8
#: ``step_size="auto"``: the first step as a fraction of the smallest box side.
STEP_FRACTION = 0.1
#: Burn-in runs in blocks of this many sweeps, adapting the step after each block.
BURN_IN_BLOCK = 10
#: Longest single kernel call of ``sample``: a KeyboardInterrupt is only seen between calls.
SWEEP_BLOCK = 1000
#: The step ladder: wider rungs as powers of LADDER_FACTOR times the adapted step, at most
#: LADDER_RUNGS rungs; a wide rung accepting below LADDER_MIN_ACCEPTANCE is switched off
#: and retried every LADDER_RETRY runs.
LADDER_FACTOR = 4.0
LADDER_RUNGS = 4
LADDER_MIN_ACCEPTANCE = 0.01
LADDER_RETRY = 100
#: Replica exchange: hottest level of an ``int`` ladder, gain of its adaptation, longest ladder.
BETA_MIN = 0.1
LADDER_GAIN = 0.5
MAX_LEVELS = 64
#: Divergence guard: a χ² or |λ| above JUMP times the median of the last GUARD_MEMORY
#: epochs (and above GUARD_FLOOR) is a divergence; MAX_ROLLBACKS in a row stop training.
JUMP, GUARD_MEMORY, GUARD_FLOOR, MAX_ROLLBACKS = 30.0, 25, 1.0, 5
#: After this many good epochs in a row one halving of the steps made by a rollback is undone.
GUARD_RECOVER = 20
#: ``epochs="auto"``: plateaus of PLATEAU_WINDOW-epoch means of the entropy, improvement
#: below PLATEAU_TOL nats; stop after PLATEAU_PATIENCE step reductions.
PLATEAU_WINDOW, PLATEAU_TOL, PLATEAU_PATIENCE = 50, 2e-3, 3
#: Min-MaxEnt's windows are longer: once the tracked entropy is anchored (below) it flattens
#: while the shape still improves, and 50-epoch windows stopped too early (docs/results.md).
PLATEAU_WINDOW_MINMAXENT = 100
#: anchor_every="auto" (Min-MaxEnt's default) re-anchors the tracked ln Z by AIS every this
#: many epochs: the chains trail a model that sharpens every epoch, and the per-epoch ratios
#: drifted -1.5 nats in 1000 epochs on the zoo's banana (quadrature), which the plateau rule
#: read as progress.
ANCHOR_EVERY = 25
#: ... and skips an anchor while the last AIS run cost more than this share of the training's
#: chain-sweeps since it. Measured: 0.08-0.18 on the 1-d and 2-d zoo (every anchor runs),
#: 0.84 on the digits at epoch 100, where anchors took 40 % of the fit time.
ANCHOR_SHARE = 0.25
#: No plateau is declared before this epoch (MaxEnt, MinMaxEnt).
PLATEAU_MIN_EPOCHS_MAXENT, PLATEAU_MIN_EPOCHS_MINMAXENT = 50, 200
#: Default epoch caps of ``epochs="auto"`` (MaxEnt, MinMaxEnt).
MAX_EPOCHS_MAXENT, MAX_EPOCHS_MINMAXENT = 500, 2000
#: Held-out early stopping: smoothing window, patience (epochs) and tolerance (nats).
HELDOUT_SMOOTH, HELDOUT_PATIENCE, HELDOUT_TOL = 10, 100, 1e-3
#: ``lr_theta="auto"``: epochs over which the θ step's KL budget warms up.
THETA_WARMUP = 20
#: ``lr_theta="auto"``: the θ step's direction, "natural" (the entropy gradient
#: preconditioned by the chains' Fisher information, training.natural_direction), "adam"
#: (ADAM's) or "auto": natural, except ADAM's for observables with a CONV2D row. Natural
#: was measured on the zoo's dense networks and projections (docs/results.md); on the
#: paper's CNN one Fisher product costs ~0.1 s (20 per epoch), and the digits have not been
#: judged with it yet.
THETA_DIRECTION = "auto"
#: Conjugate-gradient iterations on (F + δ I) v = g, and δ as a fraction of the Fisher
#: curvature along g (gᵀFg / gᵀg).
NATURAL_ITERS, NATURAL_DAMPING = 20, 1e-3
#: Relative step of the finite difference that gives the Fisher-vector products' J v.
NATURAL_FD_STEP = 1e-5
#: Chains of the AIS run that re-anchors the tracked ln Z (``anchor_every``).
ANCHOR_CHAINS = 256
#: Factor applied to every step size at a rollback and at each plateau.
RATE_CUT = 0.5
#: A steering field whose reweighting ESS fraction falls below this is logged as dominant.
FIELD_ESS_WARN = 0.01
