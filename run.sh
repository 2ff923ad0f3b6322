#!/usr/bin/env bash
# The two commands of the README, each doing the whole set-up first (idempotent):
#   ./run.sh demo [ARGS]   synthesise a cohort, extract, train, evaluate, report, predict
#   ./run.sh test [ARGS]   the whole test suite (what .ci/run calls)
#   ./run.sh ARGS...       any other deepradscore command in the project's environment
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" tools/setup_env.py
case "${1:-}" in
  test)
    shift
    # The HTML report test opens the report in headless Chromium (Debian's package).
    if ! command -v chromium >/dev/null; then
      if [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium"
      else
        echo "warning: chromium not found; install Debian's 'chromium' package for the report test"
      fi
    fi
    exec .venv/bin/python -m pytest -n 2 "$@"
    ;;
  *)
    exec .venv/bin/deepradscore "$@"
    ;;
esac
