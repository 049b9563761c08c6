"""One module per move kind: ``all_coords``, ``single`` (random scan), ``scan`` (systematic
scan), ``mala`` and ``swap`` (replica exchange); ``box`` holds what they share. The kernel
for a (move, network) is chosen in :mod:`mme_numba.kernels.sweep` only."""
