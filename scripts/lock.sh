#!/usr/bin/env bash
# Regenerates requirements.lock: the engine's runtime dependencies (no extras), resolved in a
# fresh virtualenv and pinned. The wheel test checks that the lock is complete and current.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv --without-pip "$tmp/venv"
.venv/bin/pip --python "$tmp/venv/bin/python" install -q .
{
  echo "# The engine's runtime dependencies, pinned: what the Dockerfile and the wheel test install"
  echo "# (pip install -c requirements.lock ivr_engine-*.whl). Regenerate after changing the"
  echo "# dependencies in pyproject.toml: scripts/lock.sh"
  .venv/bin/pip --python "$tmp/venv/bin/python" freeze | grep -v '^ivr-engine'
} > requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) packages pinned"
