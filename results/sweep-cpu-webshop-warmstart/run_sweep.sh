#!/usr/bin/env bash
# The CPU budget sweep from the SFT warm start (README.md in this folder), one lane of it: run the jobs named on
# the command line in order, e.g.
#   run_sweep.sh base full-demo-B4-s0 sdpo-B4-s0        # lane A
#   run_sweep.sh hero-B4-s0 grpo-B4-s0                  # lane B, started beside it
# JOB is `warmstart` (train the warm start), `base` (its evaluation: the sweep's Base row), `base@GOALS` (the Base row
# over some test goals, e.g. base@0-24, to split it over two lanes) or METHOD-B<budget>-s<seed>
# (optionally with -G1: 4 tasks x 1 rollout per step). Every job resumes from its checkpoint or its stored
# evaluation episodes: after a kill, run the same lane again. A failed job is retried twice, then the lane stops.
# Each finished job's records are copied (slimmed, no weights) into this folder by collect_runs; wall times go to
# wall_times.log.
set -u
cd "$(dirname "$0")/../.."
# One thread per process, two lanes on a 2-core machine: a 2-thread process loses 15-20x on its decode steps as
# soon as anything else runs (OpenMP threads spin at every barrier waiting for a descheduled sibling).
export HERO_GYM_DATA=${HERO_GYM_DATA:-/work/shared/data} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# Large tensors go to mmap and back to the OS when freed, so a lane holds its training peak only while it trains.
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-1048576}
HG=${HG:-.venv/bin/hero-gym}
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-runs/i8}
RES=results/sweep-cpu-webshop-warmstart
# Method runs go to $RUNS/$SWEEP and their records to $RES/<SWEEP without "sweep-">: the lr 1e-5 sweep is
# sweep-lr1e-5 -> lr1e-5/. (The lr 1e-4 run full-demo-B4-s0 of session 3 ran into $RUNS/sweep and its records are
# in $RES/full-demo-B4-s0.)
EK=$(cat $RES/env_kwargs.json)
WARM=${WARM:-$RUNS/warmstart-sft}  # session 9's wider warm start: WARM=$RUNS/warmstart-sft16 WS_TASKS=16
WS_TASKS=${WS_TASKS:-4}  # demonstrations per warm-start step (10 steps)
WARMOUT=${WARMOUT:-$RES}  # where the warm start's records go (session 3's Base row is $RES/warmstart-sft)
# Shared by every run: env settings, generation cap, evaluation set (test goals 0-49, mean@4, 8 turns) decoded
# from a bf16 copy of the weights. The prefix cache must hold every live conversation (SmolLM2 in bf16: 23 KB per
# token; 16 conversations of up to 5,000 tokens = 1.8 GB): when it is too small, entries are evicted in turn and
# every turn re-reads its whole conversation (measured: 3x slower evaluation at 1,024 MB).
source $RES/prec.sh  # PREC, PRECARGS, GC and, for fp32, SWEEP
SWEEP=${SWEEP:-sweep-lr1e-5}
RESOUT=$RES/${SWEEP#sweep-}
COMMON=(--env hero_gym/WebShop-v0 --split train --max-new-tokens 64 "${PRECARGS[@]}"
        --set prefix_cache_mb=3072 --set rollout_batch_size=16 --set "env_kwargs=$EK"
        --eval-split test --eval-tasks 0-49 --eval-k 4 --eval-max-turns 8)
# The four methods from the warm start: 8 steps x 2 tasks x G=2 (32 training episodes), lr 1e-5. (full-demo-B4-s0
# ran at 1e-4, the warm start's rate, and collapsed within 3 steps; at 1e-5 it did not in 4: README.md, and its
# config.json holds the exact settings it ran with.) A learning-curve point at step 4 (the 50 test goals,
# 1 attempt each) and the final mean@4 at step 8. EVAL_EVERY=0 leaves the step-4 point to eval_snapshot.sh (another
# lane evaluates a copy of the step-4 checkpoint while this one trains on).
METHODS=(--model $WARM/model --group-size 2 --tasks-per-step 2 --steps 8 --lr 1e-5 --eval-every ${EVAL_EVERY:-4} --set periodic_eval_k=1
         --set reflect_mode=per_turn --set demo_source=sibling_then_oracle --set export_model=false "${GC[@]}" ${EXTRA:-})
# EXTRA: more settings for every method run of this lane, with a SWEEP of their own, e.g.
#   SWEEP=sweep-lr1e-5-hint EXTRA="--set demo_step_hint=true" run_sweep.sh full-demo-B4-s0

step() {  # step NAME COMMAND...: run, time, log
  local name=$1; shift
  local t0=$(date +%s)
  echo "$(date -u +%FT%TZ) start $name (git $(git rev-parse --short HEAD))" >> $RES/wall_times.log
  "$@"
  local rc=$?
  echo "$(date -u +%FT%TZ) end $name rc=$rc wall_s=$(( $(date +%s) - t0 ))" >> $RES/wall_times.log
  return $rc
}

job() {
  case $1 in
    warmstart|base)  # behaviour cloning on oracle demonstrations of the train split (10 steps x $WS_TASKS tasks,
                     # lr 1e-4), exported to $WARM/model; its evaluation (eval/final) is the Base row. WS_EXTRA="--set
                     # eval_split=null" trains only, leaving the Base row to base@GOALS jobs in two lanes.
      step $1 $HG train --method sft --model smollm2 --group-size 1 --tasks-per-step $WS_TASKS --steps 10 --lr 1e-4 \
          "${COMMON[@]}" ${WS_EXTRA:-} --out $WARM &&
      $PY -m hero_gym.benchmarks.collect_runs $WARM --out $WARMOUT ;;
    base@*)  # base@0-24: the Base row over those test goals (mean@4), from a copy of the trained warm start resumed
             # with nothing left to train, into $WARM-eval-0-24; merge_stores.py joins the parts
      local goals=${1#base@} snap=$WARM-eval-${1#base@}
      [ -d $snap/checkpoint ] || { mkdir -p $snap && cp -r $WARM/checkpoint $WARM/config.json $snap/; } || return 1
      step $1 $HG train --method sft --model smollm2 --group-size 1 --tasks-per-step $WS_TASKS --steps 10 --lr 1e-4 \
          "${COMMON[@]}" --eval-tasks $goals --set export_model=false --out $snap ;;
    *-G1)
      local r=${1%-G1} m b s
      m=${r%-B*}; b=${r##*-B}; s=${b#*-s}; b=${b%-s*}
      step $1 $HG sweep --methods $m --budgets $b --seeds $s "${METHODS[@]}" --group-size 1 --tasks-per-step 4 \
          "${COMMON[@]}" --out $RUNS/$SWEEP-G1 &&
      $PY -m hero_gym.benchmarks.collect_runs $RUNS/$SWEEP-G1/$r --out $RESOUT/G1 ;;
    *)
      local m b s
      m=${1%-B*}; b=${1##*-B}; s=${b#*-s}; b=${b%-s*}
      step $1 $HG sweep --methods $m --budgets $b --seeds $s "${METHODS[@]}" "${COMMON[@]}" --out $RUNS/$SWEEP &&
      $PY -m hero_gym.benchmarks.collect_runs $RUNS/$SWEEP/$1 --out $RESOUT ;;
  esac
}

for j in "$@"; do
  for try in 1 2 3; do
    job $j && break
    [ $try = 3 ] && { echo "$(date -u +%FT%TZ) lane stops: $j failed 3 times" >> $RES/wall_times.log; exit 1; }
  done
done
