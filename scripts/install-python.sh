#!/usr/bin/env bash
# Installs vidfuse as a library into the project's environment (.venv, or $VIDFUSE_VENV): builds
# the core (scripts/build.sh), installs the C++ package there (headers, libvidfuse, the command,
# lib/cmake/vidfuse), then the Python package over it (python/, scikit-build-core, built against
# the same torch wheel, so without build isolation). Idempotent; a rerun rebuilds what changed.
# Afterwards: .venv/bin/python -c "import vidfuse"; find_package(vidfuse) with
# -DCMAKE_PREFIX_PATH=.venv.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VIDFUSE_BUILD_DIR:-$root/build}
venv=${VIDFUSE_VENV:-$root/.venv}
bash "$root/scripts/build.sh"
cmake --install "$build" --prefix "$venv" >/dev/null
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps \
  "$root/python" >/dev/null
echo "install-python: vidfuse $("$venv/bin/python" -c 'import vidfuse, importlib.metadata as m; print(m.version("vidfuse"))') in $venv (C++ package and Python package)" >&2
