#!/usr/bin/env bash
# The GPU run of issue 20, sized to one device call of about 5 minutes (allow 8). From the
# repository root of a checkout that carries .whl/ and .gpu/ (bash benchmarks/gpu/prepare.sh):
#
#   bash benchmarks/gpu/run.sh "$OUT"          # on the GPU machine
#   bash benchmarks/gpu/run.sh OUT --cpu       # its rehearsal here: tiny shape, 16 tokens
#
# 1. installs the carried wheels into a private folder (GPU only; the CPU rehearsal uses the
#    project's venv, $PYTHON, default .venv/bin/python);
# 2. CUDA correctness (benchmarks.gpu.check): fp32 cache="kv" vs "none" same tokens (search and
#    engine level), the same seed twice the same answer (fp32, bf16), bf16 end to end;
# 3. the local speed benchmark at the Llama-3-8B shape (random weights, bf16), 256 tokens,
#    paper settings, 2 prompts, floor / ours / reprefill / batch of 4, one process, no run
#    started after its deadline; at its time limit (SIGTERM) it reports the runs that finished.
# Writes OUT/log.txt (everything), OUT/correctness.json, OUT/speed.json and OUT/speed.md.
set -uo pipefail
out=${1:?usage: run.sh OUT [--cpu]}
mode=${2:-gpu}
mkdir -p "$out"
exec > >(tee -a "$out/log.txt") 2>&1
start=$SECONDS
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ "$mode" = "--cpu" ]; then
  py=${PYTHON:-.venv/bin/python}
  export PYTHONPATH=$PWD
  device=cpu shape=tiny tokens=16 check_tokens=16 deadline=240 check_limit=900 threads=1
else
  py=python3
  site=${DARWIN_GPU_SITE:-/tmp/darwin-site}
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=$site:$PWD
  device=cuda shape=llama3-8b tokens=256 check_tokens=48 deadline=170 check_limit=120 threads=0
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
fi
echo "== setup done in $((SECONDS - start)) s"
"$py" -c "import torch, transformers, langchain_core, langgraph; print('torch', torch.__version__, \
'cuda', torch.version.cuda, torch.cuda.is_available(), 'transformers', transformers.__version__, \
'langchain-core', langchain_core.__version__)"
timeout $check_limit "$py" -m benchmarks.gpu.check --device $device --tokens $check_tokens \
  --tokenizer .gpu/tok --out "$out"
echo "== check exit $? at $((SECONDS - start)) s"
timeout -k 15 $((deadline + 110)) "$py" -m benchmarks.speed_local --one-process --shape $shape \
  --device $device --max-tokens $tokens --prompts 2 --methods floor,ours,reprefill,batch \
  --tokenizer .gpu/tok --questions .gpu/questions.jsonl --deadline $deadline --threads $threads \
  --save "$out/speed.json" > "$out/speed.md"
echo "== speed exit $? at $((SECONDS - start)) s"
cat "$out/speed.md"
