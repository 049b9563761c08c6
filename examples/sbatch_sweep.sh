#!/bin/bash
# A [sweep] grid as a SLURM job array: one array task per grid task.
#
#   N=$(mme-numba sweep examples/configs/sweep_bimodal.toml --list)
#   sbatch --array=0-$((N - 1)) examples/sbatch_sweep.sh examples/configs/sweep_bimodal.toml
#   ...
#   mme-numba gather runs/sweep_bimodal        # one CSV row per finished task
#
# A task that was killed (time limit, preemption) resumes from its checkpoint when the same
# array index runs again (sbatch --array=K ...); a finished task is not run again.
# When the config's [sweep] table sets `ranks = R`, ask for R tasks per array element
# (--ntasks=R below) and each grid task splits its chains across R MPI ranks (mpi4py).
#
#SBATCH --job-name=mme-sweep
#SBATCH --ntasks=1                 # = ranks of [sweep] (MPI ranks per grid task)
#SBATCH --cpus-per-task=4          # numba threads per rank
#SBATCH --time=01:00:00
#SBATCH --output=slurm-%A_%a.out
#SBATCH --requeue                  # a preempted task restarts and resumes

set -euo pipefail
CONFIG=${1:?usage: sbatch --array=0-N examples/sbatch_sweep.sh CONFIG.toml}
export NUMBA_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
export OMP_NUM_THREADS=1

if [ "${SLURM_NTASKS:-1}" -gt 1 ]; then
    # several ranks per grid task: srun starts them, they share the task id
    srun --ntasks="$SLURM_NTASKS" mme-numba sweep "$CONFIG" --task-id "$SLURM_ARRAY_TASK_ID" --no-progress
else
    mme-numba sweep "$CONFIG" --task-id "$SLURM_ARRAY_TASK_ID" --no-progress
fi
