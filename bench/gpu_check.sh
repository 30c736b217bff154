#!/usr/bin/env bash
# The GPU check in one command (issue 20, item 5): NIN-BN under JAX, images/s with the
# data on the device and from the host in float32 and bfloat16, the projected minutes of
# the 200-epoch recipe, and a short recipe's validation accuracy; prints JSON.
#
#   bash bench/gpu_check.sh [--cpu] [--data DIR|ARCHIVE] [--out DIR] [--budget SECONDS]
#
# --data: CIFAR-10 class folders, or the .tar.gz they come in (unpacked into --out);
#         default: .gpudata/cifar10-train-jpeg.tar.gz, else ../shared/data/'s archive.
# --cpu:  the dry run on this machine's CPU with a tiny budget (CI runs it).
# Where keras or pydantic is missing (the GPU machine has JAX but neither), the wheels
# carried in .whl/ are installed into a private folder first.
# Everything else is passed to bench/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."

data="" out="" pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --data) data="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) pass+=("$1"); shift ;;
    esac
done
out="${out:-bench/results/gpu}"
mkdir -p "$out"
export KERAS_BACKEND="${KERAS_BACKEND:-jax}"

if ! python3 -c "import keras, pydantic" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    site="$(mktemp -d)"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$site" .whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -z "$data" ]; then
    for candidate in .gpudata/cifar10-train-jpeg.tar.gz ../shared/data/cifar10-train-jpeg.tar.gz; do
        if [ -f "$candidate" ]; then data="$candidate"; break; fi
    done
    [ -n "$data" ] || { echo "gpu_check: no --data and no CIFAR-10 archive found" >&2; exit 2; }
fi
if [ -f "$data" ]; then
    mkdir -p "$out/data"
    tar xzf "$data" -C "$out/data"
    data="$out/data/train"
fi
[ -d "$data" ] || { echo "gpu_check: --data $data is not a folder" >&2; exit 2; }

python3 -c 'import sys; print("python", sys.version.split()[0])' >&2
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader >&2 || true
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec python3 bench/gpu_check.py --data "$data" --out "$out" ${pass[@]+"${pass[@]}"}
