#!/usr/bin/env bash
# The GPU check, in one go: the machine and versions, `pytest -m gpu`, then bench_gpu.py on Stable
# Diffusion 2 inpainting's architecture (random weights) at 512 px and 50 steps: fp16 and bf16,
# batch 1/4/8/16/32, guidance skipped and full, compiled and not, each against the naive diffusers
# loop on the same pipeline in the same process, the most telling first, as many as fit in the time.
#
#     bash benchmarks/gpu_check.sh                     # on the GPU machine, from the repository's root
#     RIP_GPU_CHECK_CPU=1 bash benchmarks/gpu_check.sh  # the same steps, shrunk, on a CPU (a dry run)
#
# Settings (environment): OUT, where the outputs go (default gpu-check/; at most 8 files, none in a
# subfolder); RIP_GPU_CHECK_SECONDS, the time for everything (default 360: run it under a 400-s
# timeout, and a second try still fits in 15 minutes of a machine); RIP_WHEELS, a folder of wheels
# for the packages the machine lacks (default .whl/, made by benchmarks/gpu_wheels.sh where pip
# reaches PyPI); PYTHON (default python3, which must hold PyTorch with CUDA).
#
# It needs Python 3.12 (or the version the wheels were made for) with torch, transformers,
# huggingface-hub, accelerate, safetensors, numpy, pillow, scipy, scikit-image, opencv-python-headless, matplotlib,
# pandas, pyarrow, fsspec, pyyaml, click, tqdm, psutil, nvidia-ml-py, requests and pytest installed
# (a GPU image with PyTorch has them), and installs the rest (diffusers, MLflow's client and
# SQLite store) from RIP_WHEELS into a folder of its own, without a network.
set -u -o pipefail
START=$(date +%s)
TOTAL=${RIP_GPU_CHECK_SECONDS:-360}
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
OUT=${OUT:-$REPO/gpu-check}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
WHEELS=${RIP_WHEELS:-$REPO/.whl}
CPU=${RIP_GPU_CHECK_CPU:-0}
exec > >(tee "$OUT/gpu_check.log") 2>&1  # everything printed, also in OUT
export PYTHONUNBUFFERED=1 MLFLOW_DISABLE_TELEMETRY=true HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
left() { echo $(( TOTAL - ($(date +%s) - START) )); }
step() { echo; echo "== $1 ($(( $(date +%s) - START )) s in, $(left) s left)"; }

step "the machine"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi | tee "$OUT/nvidia-smi.txt"
else
    echo "nvidia-smi: not found$([ "$CPU" = 1 ] && echo ' (a CPU dry run)')"
fi
"$PYTHON" -c 'import platform, sys; print(f"python {sys.version.split()[0]} at {sys.executable}, {platform.platform()}")'

step "the environment"
NEEDED="torch transformers huggingface_hub accelerate safetensors numpy PIL scipy skimage cv2 matplotlib pandas pyarrow fsspec
        yaml click tqdm psutil pynvml requests pytest diffusers mlflow sqlalchemy alembic pydantic"
missing() {  # the modules of NEEDED that do not import
    "$PYTHON" - $NEEDED <<'EOF'
import importlib.util, sys
print(" ".join(name for name in sys.argv[1:] if not importlib.util.find_spec(name)))
EOF
}
MISSING=$(missing)
if [ -n "$MISSING" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    SITE=${TMPDIR:-/tmp}/rip-site
    echo "missing: $MISSING; installing the $(ls "$WHEELS"/*.whl | wc -l) wheels of $WHEELS into $SITE"
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "$WHEELS"/*.whl || echo "pip could not install every wheel of $WHEELS"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    MISSING=$(missing)
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "$MISSING" ]; then
    echo "cannot run: Python modules missing: $MISSING"
    echo "torch and the image's packages come with the machine; for the others, run"
    echo "    bash benchmarks/gpu_wheels.sh"
    echo "where pip reaches PyPI (it fills .whl/ with wheels for CPython 3.12 on x86-64 Linux) and bring"
    echo ".whl/ beside this script's repository, or point RIP_WHEELS at it."
    exit 3
fi
"$PYTHON" - <<'EOF' | tee "$OUT/versions.txt"
from importlib import metadata

import torch

print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"device: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none (CPU)'}")
for name in ("diffusers", "transformers", "huggingface-hub", "accelerate", "mlflow-skinny", "mlflow", "sqlalchemy",
             "numpy", "pillow", "scikit-image", "nvidia-ml-py", "psutil", "pytest"):
    try:
        print(f"{name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        pass
EOF
if [ "$CPU" != 1 ] && ! "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "torch sees no CUDA device: nothing to measure (RIP_GPU_CHECK_CPU=1 runs the dry run on a CPU)"
    exit 4
fi

step "pytest -m gpu"
PYTEST_SECONDS=$(( $(left) * 35 / 100 ))
timeout --signal=INT --kill-after=20 "$PYTEST_SECONDS" "$PYTHON" -m pytest -m gpu tests/test_gpu.py -q -rs \
    -p no:cacheprovider --durations=10 --junitxml="$OUT/pytest-gpu.xml"
status=$?
[ $status = 124 ] && echo "pytest -m gpu: stopped after $PYTEST_SECONDS s"
echo "pytest -m gpu: exit status $status"

step "bench_gpu.py"
BUDGET=$(( $(left) - 25 ))  # the rest, less the final report and a margin
if [ "$CPU" = 1 ]; then
    BENCH=(--cpu-dry-run)
else
    BENCH=(--random-sd2 --size 512 --steps 50 --dtypes fp16,bf16 --batch-sizes 1,4,8,16,32 --guidance skipped,full
           --compile all --iterations 8 --max-inpaintings 32 --metrics ssim)
fi
timeout --signal=INT --kill-after=15 $(( $(left) - 5 )) \
    "$PYTHON" benchmarks/bench_gpu.py "${BENCH[@]}" --budget "$BUDGET" --output "$OUT"
status=$?
[ $status = 124 ] && echo "bench_gpu.py: stopped at the time limit; $OUT/bench_gpu.md holds the variants measured"
echo "bench_gpu.py: exit status $status"

step "done"
ls -l "$OUT"
