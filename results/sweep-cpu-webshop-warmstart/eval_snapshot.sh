#!/usr/bin/env bash
# eval_snapshot.sh RUN STEP [TASKS K PART]: the learning-curve point of sweep run RUN (e.g. full-demo-B4-s0) at STEP,
# evaluated in another process while the run trains on (run_sweep.sh with EVAL_EVERY=0). Waits for the run's
# checkpoint of STEP, copies it, resumes the copy with --steps STEP (nothing left to train) and evaluates it like a
# periodic point (the 50 test goals, 1 attempt each) into RUN/eval/step_<STEP>.
# With TASKS K PART (e.g. 0-34 4 a): evaluate only those test goals, K attempts each, into snap-step<STEP>-<PART>/ and
# stop there; merge_stores.py joins the parts of one evaluation (two lanes share the final mean@4 of one run). An
# episode's seed depends only on (run seed, goal, attempt), so the parts hold the episodes one process would run.
# G and TPS: the run's group size and tasks per step when they are not the sweep's 2 and 2 (a resumed checkpoint
# must share them), e.g. G=4 TPS=1 for a run trained with EXTRA="--group-size 4 --tasks-per-step 1".
set -u
cd "$(dirname "$0")/../.."
RUN=$1; STEP=$2; TASKS=${3:-0-49}; K=${4:-1}; PART=${5:-}
RUNS=${RUNS:-runs/i8}
source results/sweep-cpu-webshop-warmstart/prec.sh  # PREC, PRECARGS, GC as in run_sweep.sh
SWEEP=${SWEEP:-sweep-lr1e-5}; LR=${LR:-1e-5}  # as in run_sweep.sh (session 3's lr 1e-4 run: SWEEP=sweep LR=1e-4)
SRC=$RUNS/$SWEEP/$RUN; SNAP=$RUNS/snap-$SWEEP/step$STEP${PART:+-$PART}
export HERO_GYM_DATA=${HERO_GYM_DATA:-/work/shared/data} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-1048576}
RES=results/sweep-cpu-webshop-warmstart
# A finished evaluation drops its checkpoint copy (1.6-3 GB each: session 14's parts filled the disk) and leaves
# this marker, so running it again is a no-op instead of a wait for a checkpoint that has moved on.
[ -e $SNAP/$RUN/evaluated ] && { echo "$SNAP/$RUN: already evaluated" >&2; exit 0; }
if [ ! -d $SNAP/$RUN/checkpoint ]; then
  until [ "$(python3 -c "import json;print(json.load(open('$SRC/checkpoint/meta.json'))['step'])" 2>/dev/null)" = "$STEP" ]; do sleep 10; done
  mkdir -p $SNAP/$RUN && cp -r $SRC/checkpoint $SRC/config.json $SNAP/$RUN/ \
    || { rm -rf $SNAP/$RUN/checkpoint; echo "copying $SRC/checkpoint failed" >&2; exit 1; }  # e.g. a full disk
  python3 -c "import json;assert json.load(open('$SNAP/$RUN/checkpoint/meta.json'))['step']==$STEP" || exit 1
fi
m=${RUN%-B*}; b=${RUN##*-B}; s=${b#*-s}; b=${b%-s*}
EK=$(cat $RES/env_kwargs.json)
echo "$(date -u +%FT%TZ) start snapshot $RUN step $STEP $PART tasks $TASKS k $K (git $(git rev-parse --short HEAD))" >> $RES/wall_times.log
.venv/bin/hero-gym sweep --methods $m --budgets $b --seeds $s --model ${WARM:-$RUNS/warmstart-sft}/model --group-size ${G:-2} \
  --tasks-per-step ${TPS:-2} --steps $STEP --lr $LR --eval-every 0 --set reflect_mode=per_turn \
  --set demo_source=sibling_then_oracle --set export_model=false "${GC[@]}" \
  --env hero_gym/WebShop-v0 --split train --max-new-tokens 64 "${PRECARGS[@]}" --set prefix_cache_mb=3072 \
  --set rollout_batch_size=16 --set "env_kwargs=$EK" \
  --eval-split test --eval-tasks $TASKS --eval-k $K --eval-max-turns 8 --out $SNAP || exit 1
echo "$(date -u +%FT%TZ) end snapshot $RUN step $STEP $PART" >> $RES/wall_times.log
rm -rf $SNAP/$RUN/checkpoint && touch $SNAP/$RUN/evaluated
[ -n "$PART" ] && exit 0
DST=$SRC/eval/$(printf 'step_%05d' $STEP)
[ -d $DST ] && mv $DST ${DST}_inprocess-partial-$(date +%s)
mkdir -p $SRC/eval && cp -r $SNAP/$RUN/eval/final $DST  # a train-only run (eval_split=null) has no eval/ yet
