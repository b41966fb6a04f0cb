#!/usr/bin/env bash
# The CPU budget sweep from the SFT warm start (README.md in this folder). Every step resumes from its checkpoint or
# its stored evaluation episodes: after a kill, run this script again. Each finished run's records are copied
# (slimmed, no weights) into this folder by collect_runs; wall times go to wall_times.log.
set -u
cd "$(dirname "$0")/../.."
export HERO_GYM_DATA=${HERO_GYM_DATA:-/work/shared/data} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
HG=${HG:-.venv/bin/hero-gym}
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-runs/i8}
RES=results/sweep-cpu-webshop-warmstart
EK=$(cat $RES/env_kwargs.json)
WARM=$RUNS/warmstart-sft
# Shared by every run: env settings, generation cap, evaluation set (test goals 0-49, mean@4, 8 turns).
COMMON=(--env hero_gym/WebShop-v0 --split train --max-new-tokens 64 --set precision=bf16-mixed
        --set prefix_cache_mb=2048 --set rollout_batch_size=8 --set "env_kwargs=$EK"
        --eval-split test --eval-tasks 0-49 --eval-k 4 --eval-max-turns 8)
# The four methods from the warm start: 12 steps x 2 tasks x G=2, lr 3e-5; learning-curve points at steps 4 and 8
# (the 50 test goals, 1 attempt each) and the final mean@4 at step 12.
METHODS=(--model $WARM/model --group-size 2 --tasks-per-step 2 --steps 12 --lr 3e-5 --eval-every 4 --set periodic_eval_k=1
         --set reflect_mode=per_turn --set demo_source=sibling_then_oracle --set export_model=false)

step() {  # step NAME COMMAND...: run, time, log
  local name=$1; shift
  local t0=$(date +%s)
  echo "$(date -u +%FT%TZ) start $name (git $(git rev-parse --short HEAD))" >> $RES/wall_times.log
  "$@"
  local rc=$?
  echo "$(date -u +%FT%TZ) end $name rc=$rc wall_s=$(( $(date +%s) - t0 ))" >> $RES/wall_times.log
  return $rc
}

# 1. Warm start: behaviour cloning on oracle demonstrations of the train split (10 steps x 4 tasks, lr 1e-4),
#    exported to $WARM/model; its evaluation on the test set is the sweep's Base row (eval/final).
step warmstart $HG train --method sft --model smollm2 --group-size 1 --tasks-per-step 4 --steps 10 --lr 1e-4 \
    "${COMMON[@]}" --out $WARM || exit 1
$PY -m hero_gym.benchmarks.collect_runs $WARM --out $RES

# 2. The most informative runs first: one seed of every method at both budgets, then the other seeds; one run per
#    call so each run's records are collected as soon as it ends.
for bs in "4 0" "8 0" "4 1" "8 1" "4 2" "8 2"; do
  set -- $bs
  for m in full-demo hero sdpo grpo; do
    step "$m-B$1-s$2" $HG sweep --methods $m --budgets $1 --seeds $2 "${METHODS[@]}" "${COMMON[@]}" --out $RUNS/sweep
    $PY -m hero_gym.benchmarks.collect_runs $RUNS/sweep/$m-B$1-s$2 --out $RES
  done
done

# 3. G = 1 (equal env interactions: 4 tasks x 1 rollout per step) for the distillation methods.
for m in full-demo hero sdpo; do
  step "$m-B4-s0-G1" $HG sweep --methods $m --budgets 4 --seeds 0 "${METHODS[@]}" --group-size 1 --tasks-per-step 4 \
      "${COMMON[@]}" --out $RUNS/sweep-G1
  $PY -m hero_gym.benchmarks.collect_runs $RUNS/sweep-G1/$m-B4-s0 --out $RES/G1
done
