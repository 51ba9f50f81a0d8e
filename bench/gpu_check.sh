#!/usr/bin/env bash
# The scale bench on one CUDA GPU in bfloat16 at 0.5B parameters (llama3 and qwen2.5 shapes):
# seconds per candidate by stage (merge / evaluate / write / held-out), disk and peak RSS for the
# baseline (every survivor written and held-out scored) and the current flow (champion only,
# finalists' held-out), then GPU utilisation sampled by nvidia-smi while it ran. Under 8 minutes
# on one H100/H200-class GPU. Never part of CI.
#
#   bash bench/gpu_check.sh [extra bench/scale.py arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null || { echo "gpu_check: no nvidia-smi: not a CUDA machine" >&2; exit 2; }
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: torch sees no CUDA device')"

log=$(mktemp)
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 > "$log" &
sampler=$!
trap 'kill $sampler 2>/dev/null || true; rm -f "$log"' EXIT

start=$(date +%s)
timeout 480 python bench/scale.py --device cuda --archs llama3,qwen2.5 --sizes 0.5b --candidates 6 \
    --limit 32 --threads 4 "$@"
echo "wall time: $(( $(date +%s) - start )) s"

kill $sampler 2>/dev/null || true
awk -F', ' '{ n++; u += $1; if ($1 > 0) busy++; if ($2 > m) m = $2 }
    END { if (n) printf "GPU utilisation: mean %.0f%%, busy in %.0f%% of %d samples; peak memory %d MiB\n",
          u / n, 100 * busy / n, n, m }' "$log"
