#!/usr/bin/env bash
# Installs what pixelfly needs to build and test on Debian 12, and nothing that is already there:
# Debian packages (compiler tools, GoogleTest, Google Benchmark, CLI11, nlohmann-json, zlib,
# libpng, gnuplot, the Fashion-MNIST and King James Bible data sets), LibTorch from PyPI's
# torch wheel, and the safetensors package (for a Python interoperability test). Safe to run
# any number of times; a second run installs nothing.
set -euo pipefail

TORCH_VERSION="2.11.0"
PYTHON="${PYTHON:-python3}"
DEB_PACKAGES=(
  cmake ninja-build g++ make pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev zlib1g-dev libpng-dev
  gnuplot-nox dataset-fashion-mnist bible-kjv
)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  echo "install_deps: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

have_torch=$("$PYTHON" - <<PY 2>/dev/null || true
import importlib.util
spec = importlib.util.find_spec("torch")
if spec is not None:
    import torch
    print(torch.__version__.split("+")[0])
PY
)
if [ "$have_torch" != "$TORCH_VERSION" ]; then
  echo "install_deps: installing torch==${TORCH_VERSION} from PyPI (LibTorch for C++), found '${have_torch:-none}'"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "torch==${TORCH_VERSION}"
fi
if ! "$PYTHON" -c "import safetensors" 2>/dev/null; then
  echo "install_deps: installing safetensors from PyPI (checks pixelfly's .safetensors files from Python)"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check safetensors
fi
