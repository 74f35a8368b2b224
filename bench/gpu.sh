#!/usr/bin/env bash
# The GPU figures (issue 13), in one short run on a CUDA machine:
#   - the trainer against a bare loop, mixed precision (AMP + channels-last) and fp32;
#   - JPEG decoding stage by stage (bench/decode.py);
#   - embedding stored JPEG crops with the GPU decoder (torchvision.io.decode_jpeg) and with
#     CPU decoding threads, each against the bare forward pass (bench/embed.py).
# Each step has its own time limit so one slow step cannot take the others' time.
# Usage: bash bench/gpu.sh [OUT_DIR]   (python3 must hold torch with CUDA; idstudio on PYTHONPATH)
set -u
out=${1:-${OUT:-/tmp/idstudio-gpu}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"
py=${PYTHON:-python3}
step() {  # name, limit in seconds, command...
    local name=$1 limit=$2; shift 2
    echo "== $name"
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1; echo "exit $?" >>"$out/$name.txt"
    tail -n 2 "$out/$name.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
$py -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$out/gpu.txt"
step train_amp 150 $py bench/train.py 60 --batch 256 --amp
step train_fp32 120 $py bench/train.py 60 --batch 256
step decode 90 $py bench/decode.py --n 16384 --batch 512
step embed_gpu_decode 90 $py bench/embed.py --n 16384 --batch 512 --no-onnx --repeats 3
IDSTUDIO_GPU_DECODE=0 step embed_cpu_decode 90 $py bench/embed.py --n 16384 --batch 512 --no-onnx --repeats 3
