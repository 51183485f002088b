#!/usr/bin/env bash
# Builds, on this machine, what the GPU run carries (both gitignored, ~40 MB):
#   .whl/  the Python 3.12 wheels the GPU machine lacks (benchmarks/gpu/wheels.txt: the 48 of
#          ../shared/tools/gpu/wheels.txt, plus attrs and h11, which jsonschema and httpcore2
#          import and which that list assumes are there; it has
#          torch, numpy, accelerate, tokenizers, jinja2, rich... but no langchain-core,
#          langgraph, pydantic 2.14 or transformers 5.25)
#   .gpu/  SmolLM2's tokenizer (tok/) and the first MT-Bench questions (questions.jsonl)
# Usage, from the repository root: bash benchmarks/gpu/prepare.sh [QUESTIONS_JSONL]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
questions=${1:-../shared/data/mt_bench_questions.jsonl}
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || py=python3
if [ "$(ls .whl/*.whl 2>/dev/null | wc -l)" -lt "$(grep -c . "$here/wheels.txt")" ]; then
  mkdir -p .whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux1_x86_64 -d .whl -r "$here/wheels.txt"
fi
mkdir -p .gpu/tok
tok=$(HF_HUB_OFFLINE=1 PYTHONPATH=$PWD "$py" -c \
  "from langchain_darwin.inprocess.models import default_model_dir; print(default_model_dir())")
cp "$tok"/tokenizer.json "$tok"/tokenizer_config.json "$tok"/chat_template.jinja .gpu/tok/
head -n 8 "$questions" > .gpu/questions.jsonl
du -sh .whl .gpu
