#!/usr/bin/env bash
# The test command: static checks, then pytest (unit tests and the test-scale workflow runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ruff check workflow tests tools
ruff format --check workflow tests tools
snakefmt --check Snakefile workflow/rules/
snakemake --lint --workflow-profile none
python -m pytest -q tests
