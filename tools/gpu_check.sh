#!/usr/bin/env bash
# The GPU check in one command, for a lent GPU machine (docs/gpu-check.md):
#
#   bash tools/gpu_check.sh                       # there: CUDA, every check
#   bash tools/gpu_check.sh --device cpu          # here: the same script on the CPU
#
# Why: such a machine is lent rarely and briefly, has no network, and lacks trl, datasets,
# nanogcg (and has an older transformers). tools/gpu_wheels.sh, run here beforehand, puts their
# wheels in .whl/ (git-ignored: the device call must carry it); this script installs them into a
# throwaway folder put first on PYTHONPATH (a venv would not do: the machine's python3 is itself
# a venv, whose packages a nested --system-site-packages venv does not see), then runs
# tools/gpu_check.py, which prints one line per check. Arguments go to tools/gpu_check.py; where
# $OUT is set (the device tool's folder that comes back), the log and the JSON go there.
# Exit status: tools/gpu_check.py's (1 if a check failed), 2 if the wheels did not install,
# 124 if the checks outran GPU_CHECK_TIMEOUT seconds (default 420: with the install, under 8 min).
#
# Environment: PYTHON (default python3), GPU_CHECK_WHEELS (default .whl), GPU_CHECK_TIMEOUT.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${GPU_CHECK_WHEELS:-.whl}
LIMIT=${GPU_CHECK_TIMEOUT:-420}
export PYTHONUNBUFFERED=1

SITE=$(mktemp -d "${TMPDIR:-/tmp}/backtrack-gpu-site.XXXXXX")
trap 'rm -rf "$SITE"' EXIT

shopt -s nullglob
wheels=("$WHEELS"/*.whl)
if ((${#wheels[@]} == 0)); then
  echo "no wheels in $WHEELS/: the checks use what $PY has (bash tools/gpu_wheels.sh fills it)"
else
  t0=$SECONDS
  if "$PY" -m pip --version >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" "${wheels[@]}" || {
      echo "pip could not install the wheels of $WHEELS/ into $SITE" >&2
      exit 2
    }
  else # no pip: a wheel is a zip of what goes into site-packages
    for w in "${wheels[@]}"; do
      "$PY" -m zipfile -e "$w" "$SITE" || {
        echo "could not unpack $w" >&2
        exit 2
      }
    done
  fi
  echo "installed ${#wheels[@]} wheels from $WHEELS/ in $((SECONDS - t0)) s"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi

out=()
if [ -n "${OUT:-}" ]; then
  out=(--out "$OUT") # an --out among the arguments comes later and wins
fi
timeout -k 10 "$LIMIT" "$PY" tools/gpu_check.py "${out[@]}" "$@"
rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "timeout  FAIL  the checks outran ${LIMIT} s (GPU_CHECK_TIMEOUT); the lines above finished"
fi
exit "$rc"
