#!/usr/bin/env bash
# The two GPU acceptance ratios of the device batch path, in one run of under 5 minutes:
#   resnet50 at 224 px, batch 128, bf16:  device path >= 0.9 of the limit
#   resnet10t at 32 px, batch 256, bf16:  device path >= 0.6 of the limit
# (limit: batches already on the GPU; see benchmarks/train.py for what each line measures).
#
#   bash benchmarks/gpu_check.sh                 # on a machine with one CUDA GPU
#   bash benchmarks/gpu_check.sh --device cpu --tiny   # smoke test of the script itself
#
# Prints benchmarks/train.py's table for each configuration, then one PASS/FAIL line each;
# exits 1 when a ratio is below its bar.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" NO_ALBUMENTATIONS_UPDATE=1

device=cuda
tiny=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --tiny) tiny=1; shift ;;
    *) echo "gpu_check.sh: unknown argument $1 (expected --device NAME or --tiny)" >&2; exit 2 ;;
  esac
done
workers=$(( $(nproc) > 8 ? 8 : $(nproc) ))

check() {  # name bar args...
  local name="$1" bar="$2"; shift 2
  local out ratio
  out=$(python benchmarks/train.py --device "$device" --workers "$workers" "$@")
  echo "$out"
  ratio=$(echo "$out" | awk '/^  device:/ { for (i = 1; i <= NF; i++) if ($i == "ratio") { print $(i + 1); exit } }')
  if awk -v r="$ratio" -v b="$bar" 'BEGIN { exit !(r >= b) }'; then
    echo "PASS $name: device path ratio $ratio >= $bar"
  else
    echo "FAIL $name: device path ratio $ratio < $bar"
    status=1
  fi
}

status=0
if [ "$tiny" = 1 ]; then
  check "resnet50/32 (tiny)" 0 --model resnet50 --img-size 32 --batch-size 16 --images 64 --repeats 1
  check "resnet10t/16 (tiny)" 0 --model resnet10t --img-size 16 --batch-size 32 --images 128 --repeats 1
else
  check "resnet50/224/bf16" 0.9 --model resnet50 --img-size 224 --batch-size 128 --images 3000 --repeats 3
  check "resnet10t/32/bf16" 0.6 --model resnet10t --img-size 32 --batch-size 256 --images 12000 --repeats 5
fi
exit "$status"
