#!/usr/bin/env bash
# The GPU figures (issue 22), in one prepared run of under 8 minutes on a CUDA machine:
#   - the trainer against a bare loop, mixed precision (AMP + channels-last) and fp32, both
#     recipes (ResNet-18 64x32 pairs; MobileNetV2 128x64 tracklets), crops from the cache;
#   - embedding stored crops (from the crop cache, and decoding JPEGs) against the bare forward;
#   - the training data path's crops/s into pinned memory (bench/datapath.py, 10k and 100k);
#   - GPU utilisation, sampled by nvidia-smi every 500 ms, averaged over each step.
# Each step has its own time limit so one slow step cannot take the others' time. The last
# line is one JSON object with every step's last line and its mean GPU utilisation.
# Usage: bash bench/gpu.sh [OUT_DIR]   (python3 must hold torch with CUDA; idstudio on PYTHONPATH)
set -u
out=${1:-${OUT:-/tmp/idstudio-gpu}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"
py=${PYTHON:-python3}
: >"$out/steps.txt"
step() {  # name, limit in seconds, command...
    local name=$1 limit=$2; shift 2
    echo "== $name"
    local t0; t0=$(date +%s.%N)
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1; echo "exit $?" >>"$out/$name.txt"
    echo "$name $t0 $(date +%s.%N)" >>"$out/steps.txt"
    tail -n 3 "$out/$name.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
$py -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$out/gpu.txt"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 >"$out/util.csv" 2>/dev/null &
smi=$!
step train_amp 150 $py bench/train.py 60 --batch 256 --amp
step train_fp32 120 $py bench/train.py 60 --batch 256
step embed 100 $py bench/embed.py --n 16384 --batch 512 --no-onnx --repeats 3
step datapath 150 $py bench/datapath.py --instances 10000,100000 --seconds 3 --root "$out/datapath"
kill "$smi" 2>/dev/null
$py - "$out" <<'PY'
import datetime, json, sys
from pathlib import Path
out = Path(sys.argv[1])
samples = []
for line in (out / "util.csv").read_text().splitlines():
    try:
        stamp, util, mem = [v.strip() for v in line.split(",")]
        t = datetime.datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").timestamp()
        samples.append((t, float(util), float(mem)))
    except ValueError:
        continue
result = {}
for line in (out / "steps.txt").read_text().splitlines():
    name, t0, t1 = line.split()
    inside = [s for s in samples if float(t0) <= s[0] <= float(t1)]
    text = (out / f"{name}.txt").read_text().strip().splitlines()
    last = next((l for l in reversed(text) if l.startswith("{")), None)
    result[name] = {"figures": json.loads(last) if last else None, "exit": text[-1] if text else None,
                    "seconds": round(float(t1) - float(t0), 1),
                    "gpu_util_mean": round(sum(s[1] for s in inside) / len(inside), 1) if inside else None,
                    "gpu_mem_max_mb": max((s[2] for s in inside), default=None)}
print(json.dumps(result))
PY
