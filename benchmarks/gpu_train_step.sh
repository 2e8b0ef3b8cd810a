#!/usr/bin/env bash
# GPU: I-JEPA training-step throughput vs the official PyTorch step on one GPU.
#
#   bash benchmarks/gpu_train_step.sh                # all runs below
#   RUNS="vith14" BACKENDS=jax bash benchmarks/gpu_train_step.sh
#
# Runs (each prints img/s, the ratio to the official step, MFU and peak device memory):
#   vith14      ViT-H/14, 224 px, batch 128, bf16, real masks (official: ~276 img/s on one
#               H100, ~19% MFU)
#   vitb16      ViT-B/16, 224 px, batch 128, bf16, real masks (official: ~1281 img/s)
#   *_fixed     the same models on fixed token counts (the same work for both sides)
#
# MFU = FLOPs of the official step's work (benchmarks/_workloads.py::step_flops, matmuls
# only, backward = 2 x forward; it gives 19% for the official 276 img/s) x steps/s /
# the datasheet dense peak (H100/H200 SXM: 989.4 TFLOP/s bf16).
#
# Environment: IJEPA_OFFICIAL_CODE (a facebookresearch/ijepa checkout; docs/performance.md),
# BACKENDS (default jax,torch,tensorflow), RAGGED (our padding modes, default "bucket pad
# equal"; "equal": padded to caps equal to the official cut's mean lengths, equal work),
# STEPS (default 40), OUT (json folder, default ${OUT:-bench_gpu}).
set -uo pipefail
cd "$(dirname "$0")/.."
BACKENDS=${BACKENDS:-jax,torch,tensorflow}
RAGGED=${RAGGED:-bucket pad equal}
STEPS=${STEPS:-40}
RUNS=${RUNS:-vith14 vitb16 vith14_fixed vitb16_fixed}
OUT=${OUT:-bench_gpu}
mkdir -p "$OUT"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || {
    echo "no GPU (nvidia-smi failed)"; exit 1; }
python - <<'EOF'
import importlib
for name in ("torch", "jax", "tensorflow", "keras"):
    try:
        mod = importlib.import_module(name)
        extra = ""
        if name == "torch":
            extra = f"cuda={mod.cuda.is_available()}"
        elif name == "jax":
            extra = f"devices={mod.devices()}"
        elif name == "tensorflow":
            extra = f"gpus={mod.config.list_physical_devices('GPU')}"
        print(f"{name} {mod.__version__} {extra}")
    except Exception as error:  # noqa: BLE001
        print(f"{name}: not usable ({error})")
EOF
OFFICIAL=$(python -c "import sys; sys.path.insert(0, 'benchmarks'); import _official; print(_official.official_code_dir())")
[ -d "$OFFICIAL/src" ] || { echo "official code not found at $OFFICIAL: set IJEPA_OFFICIAL_CODE"; exit 1; }

# --interleave no: the official step runs in its own process (two ViT-H in one process
# may not fit); a dedicated GPU has no load changes to cancel.
COMMON=(--device gpu --steps "$STEPS" --warmup 5 --interleave no
        --backends "$BACKENDS")
VITH=(--model huge --patch-size 14 --image-size 224 --batch 128 --dtype bf16)
VITB=(--model base --patch-size 16 --image-size 224 --batch 128 --dtype bf16)

for run in $RUNS; do
    case $run in
        vith14|vitb16)
            [ "$run" = vith14 ] && SIZE=("${VITH[@]}") || SIZE=("${VITB[@]}")
            for ragged in $RAGGED; do
                echo "=== $run, real masks, ragged=$ragged"
                if [ "$ragged" = equal ]; then  # padded to caps = the official cut's means
                    MASKS=(--ragged pad --context-length official --target-length official)
                else
                    MASKS=(--ragged "$ragged")
                fi
                python benchmarks/bench_train_step.py "${SIZE[@]}" "${COMMON[@]}" \
                    --masks sampler "${MASKS[@]}" --json "$OUT/${run}_${ragged}.json"
            done ;;
        vith14_fixed)
            # official ViT-H/14 batch-128 averages (benchmarks: MaskCollator, 20 batches):
            # 72 context tokens, 4 blocks of 43
            echo "=== $run"
            python benchmarks/bench_train_step.py "${VITH[@]}" "${COMMON[@]}" \
                --masks 72/4x43 --json "$OUT/$run.json" ;;
        vitb16_fixed)
            # official ViT-B/16 batch-128 averages: 54 context tokens, 4 blocks of 33
            echo "=== $run"
            python benchmarks/bench_train_step.py "${VITB[@]}" "${COMMON[@]}" \
                --masks 54/4x33 --json "$OUT/$run.json" ;;
        *) echo "unknown run $run" ;;
    esac
done
