#!/usr/bin/env bash
# What issue 7 needs measured on a GPU, scripted, so a session lent one for a short while spends
# its device time measuring, not typing. Two device calls of under 10 minutes each:
#
#   bash benchmarks/gpu_check.sh env tests eager compile      # ~5 min on an H100 (estimate)
#   bash benchmarks/gpu_check.sh env graphs trainer           # ~5 min
#
# No argument runs every step. Output: gpu_check.log (everything) and summary.txt (one line per
# step) in $OUT when set (the device tool's output folder), else in gpu_check_out/; training runs
# write under /tmp/gpu_check_runs, and the trainer step copies its losses.png and progress.gif out.
# Uses whichever python3 has torch (PYTHON=... to choose); the repo goes on PYTHONPATH, nothing is
# installed, except missing packages from ./.wheels when that folder exists (`pip download` them
# here and carry the folder). Each step has a time limit; a failed step does not stop the rest.
# QUICK=1 DEVICE=cpu runs the same steps tiny on a CPU (what tests/test_benchmarks.py does).
#
# Steps:
#   env      nvidia-smi; torch, CUDA, cuDNN versions; which packages are missing
#   tests    tests/test_fast_path.py and tests/test_checks_lesson08.py, their CUDA tests included
#   eager    bench_train.py with the settings train picks on CUDA (eager, bf16, data on the GPU, ...)
#   compile  ... plus --compile (Inductor kernels)
#   graphs   ... plus --compile --compile-mode reduce-overhead (CUDA graphs), and a profile
#   trainer  python -m dcgan_ref train: 50,000 synthetic images at 64x64 for 2 epochs, then
#            --resume to 3: the whole loop's images/s (samples, checkpoints included) and artifacts
# Not here: data-parallel training on CUDA (NCCL refuses two ranks on one GPU, and a world of one
# process is not distributed); it needs a machine with two GPUs: torchrun --nproc_per_node=2.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-gpu_check_out}"
RUNS="${RUNS:-/tmp/gpu_check_runs}"
mkdir -p "$OUT_DIR" "$RUNS"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
LOG="$OUT_DIR/gpu_check.log"
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(env tests eager compile graphs trainer)

missing=$("$PY" -c 'import importlib.util as u
print(" ".join(m for m in ["torch", "torchvision", "numpy", "PIL", "tqdm", "matplotlib", "pytest"]
               if u.find_spec(m) is None))')
if [ -n "$missing" ] && [ -d .wheels ]; then
    echo "installing from .wheels: $missing" | tee -a "$LOG"
    "$PY" -m pip install -q --no-index --find-links .wheels ${missing//PIL/pillow} >>"$LOG" 2>&1
fi

run_step() {  # run_step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS start
    printf '\n== %s (limit %ss): %s\n' "$name" "$limit" "$*" | tee -a "$LOG"
    start=$(wc -l <"$LOG")
    timeout "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    tail -n +"$((start + 1))" "$LOG" | tail -n 30
    echo "$name: exit $rc, $((SECONDS - t0)) s" | tee -a "$OUT_DIR/summary.txt"
}

DEVICE="${DEVICE:-cuda}"
BENCH=("$PY" benchmarks/bench_train.py --device "$DEVICE" --warmup 20 --steps 100 --rounds 3)
TRAIN=("$PY" -m dcgan_ref train --device "$DEVICE" --dataset synthetic --synthetic-size 50000 --image-size 64
       --no-progress --out "$RUNS/train")
if [ -n "${QUICK:-}" ]; then  # the mechanics only, in seconds
    BENCH=("$PY" benchmarks/bench_train.py --device "$DEVICE" --warmup 1 --steps 1 --rounds 1 --ngf 8 --ndf 8
           --batch-size 16 --n-images 64 --workers 0)
    TRAIN=("$PY" -m dcgan_ref train --device "$DEVICE" --dataset synthetic --synthetic-size 64 --image-size 32
           --ngf 8 --ndf 8 --batch-size 16 --no-progress --out "$RUNS/train")
fi
for s in "${STEPS[@]}"; do
    case $s in
    env) run_step env 60 bash -c "nvidia-smi; echo missing packages: '${missing:-none}'; $PY -c 'import torch
print(torch.__version__, \"CUDA\", torch.version.cuda, \"cuDNN\", torch.backends.cudnn.version(),
      torch.cuda.get_device_name(), \"bf16:\", torch.cuda.is_bf16_supported())'" ;;
    tests) run_step tests 300 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_fast_path.py \
        tests/test_checks_lesson08.py ;;
    eager) run_step eager 180 "${BENCH[@]}" ;;
    compile) run_step compile 300 "${BENCH[@]}" --compile ;;
    graphs) run_step graphs 300 "${BENCH[@]}" --compile --compile-mode reduce-overhead --profile 20 ;;
    trainer)
        rm -rf "$RUNS/train"
        run_step trainer 300 bash -c "$(printf '%q ' "${TRAIN[@]}") --epochs 2 && \
            $(printf '%q ' "${TRAIN[@]}") --epochs 3 --resume && ls -R $RUNS/train | head -20"
        cp "$RUNS/train/losses.png" "$RUNS/train/progress.gif" "$OUT_DIR/" 2>/dev/null ;;
    *) echo "unknown step $s (env tests eager compile graphs trainer)"; exit 2 ;;
    esac
done
echo
cat "$OUT_DIR/summary.txt"
