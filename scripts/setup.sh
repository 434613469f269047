#!/usr/bin/env bash
# Quick start, step 1: create .venv, install speat with its test tools, register the evaluate module, run the main job.
#
# torch comes first, pinned, and by default as the CPU build: on Linux, PyPI's torch wheel is the CUDA build (several
# GB), so without a GPU we ask PyTorch's CPU wheel index for it. What happens:
#   SPEAT_TORCH=auto (default): CPU build unless `nvidia-smi -L` lists a GPU, then the default (CUDA) build;
#   SPEAT_TORCH=cpu / SPEAT_TORCH=cuda: that build, whatever the machine has.
# The CPU build comes from $SPEAT_TORCH_CPU_INDEX (default https://download.pytorch.org/whl/cpu) when that index
# answers within 10 s; otherwise from the default index (pip's configuration, PyPI), saying so.
# `bash scripts/setup.sh --print-torch-install` only prints the pip arguments it would use for torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
CPU_INDEX="${SPEAT_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

torch_variant() {
  case "${SPEAT_TORCH:-auto}" in
    cpu | cuda) echo "$SPEAT_TORCH" ;;
    auto) if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q "GPU"; then
            echo cuda
          else
            echo cpu
          fi ;;
    *) echo "scripts/setup.sh: SPEAT_TORCH must be auto, cpu or cuda, got '${SPEAT_TORCH}'" >&2; exit 2 ;;
  esac
}

index_answers() {
  "$PYTHON" - "$1" <<'EOF'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=10).close()
except Exception:
    sys.exit(1)
EOF
}

# Prints the pip arguments for torch, one per line; explains its choice on stderr ("installing", or with
# --print-torch-install "would install").
torch_install_arguments() {
  local variant verb="$1"
  variant=$(torch_variant)
  echo "torch==${TORCH_VERSION}"
  if [ "$variant" = cuda ]; then
    echo "setup: ${verb} torch ${TORCH_VERSION} from the default index (the CUDA build on Linux)" >&2
  elif index_answers "$CPU_INDEX"; then
    echo "setup: ${verb} the CPU build of torch ${TORCH_VERSION} from ${CPU_INDEX}" >&2
    printf '%s\n' --index-url "$CPU_INDEX"
  else
    echo "setup: ${CPU_INDEX} cannot be reached; ${verb} torch ${TORCH_VERSION} from the default index" \
         "(a CUDA build on Linux unless a CPU build is already there)" >&2
  fi
}

torch_variant >/dev/null  # a bad SPEAT_TORCH stops here, before anything is installed
if [ "${1:-}" = "--print-torch-install" ]; then
  torch_install_arguments "would install"
  exit 0
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '${TORCH_VERSION}')" 2>/dev/null
then
  echo "setup: torch ${TORCH_VERSION} is already installed in .venv" >&2
else
  mapfile -t arguments < <(torch_install_arguments installing)
  .venv/bin/python -m pip install --quiet "${arguments[@]}"
fi
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/speat register
.venv/bin/speat evaluate
cat >&2 <<'EOF'

setup: done. speat is installed in .venv, which is not on your PATH yet: run
  source .venv/bin/activate      # then `speat evaluate ...`, `speat --help`, `python -m pytest`
or call it as .venv/bin/speat. The tests: .venv/bin/python -m pytest (about 21 minutes on 2 cores;
-m "not slow" leaves out the slowest and takes about 10).
EOF
