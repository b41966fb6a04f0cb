# Sourced by run_sweep.sh and eval_snapshot.sh (after cd to the repository root): the precision settings.
# PREC=bf16 (the settings of sessions 3-6) or fp32. Unset, it follows this CPU
# (hero_gym.policies.models.cpu_has_native_bf16): without avx512_bf16 / amx_bf16 PyTorch emulates bf16, measured on
# an AVX2-only EPYC at 7.9x (prefill), 2.7x (decode) and 15x (forward + backward) the fp32 time
# (results/bench_cpu_precision.md). fp32 method runs also checkpoint activations (GC): a budget-8 GRPO step peaked at
# 7.0 GB with it and was OOM-killed at 15-18 GB without it beside a second lane (same loss and gradients, one more
# forward). The warm start does not take GC, so it stays the run of results/.../fp32/warmstart-sft. fp32 runs go
# to their own SWEEP (records: fp32/).
if [ -z "${PREC:-}" ]; then
  PREC=$(.venv/bin/python -c "from hero_gym.policies.models import cpu_has_native_bf16 as f; print('bf16' if f() else 'fp32')") || exit 1
  echo "PREC=$PREC (this CPU's native bf16: $([ $PREC = bf16 ] && echo yes || echo no))" >&2
fi
if [ "$PREC" = fp32 ]; then
  PRECARGS=(--set precision=fp32 --set eval_precision=same); GC=(--set grad_checkpointing=true)
  SWEEP=${SWEEP:-sweep-fp32}
else
  PRECARGS=(--set precision=bf16-mixed --set eval_precision=bf16); GC=()
fi
