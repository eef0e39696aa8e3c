#!/usr/bin/env bash
# Type-check accelkit's TensorRT code (accelkit/trt/, accelkit/device.py) against the TensorRT Python API stubs.
#
# Why a script: the PyPI package `tensorrt-stubs` (10.13.0.35.1) installs its stubs as
# `tensorrt/__init__.pyi` + `tensorrt_bindings/*.pyi` with no `py.typed` marker, so mypy
# ignores them ("missing library stubs or py.typed marker") and every TensorRT call is
# silently typed `Any`. The generated stubs also contain a few syntax errors (parameters
# named `in`, a required parameter after defaulted ones). This script copies the stubs
# to a temporary folder, patches those lines, and points MYPYPATH at it, so the calls are
# really checked.
#
# Setup (no GPU or TensorRT needed; --no-deps because tensorrt-stubs depends on the
# `tensorrt` wheel, which downloads from pypi.nvidia.com):
#   pip install --no-deps 'tensorrt-stubs==10.13.0.35.1' && pip install mypy
# Usage:
#   benchmarks/typecheck_trt.sh [extra mypy args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
SP=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if [ ! -f "$SP/tensorrt_bindings/tensorrt.pyi" ] || [ ! -f "$SP/tensorrt/__init__.pyi" ]; then
  echo "tensorrt-stubs not found in $SP; install: pip install --no-deps 'tensorrt-stubs==10.13.0.35.1' mypy" >&2
  exit 2
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/tensorrt" "$TMP/tensorrt_bindings"
cp "$SP"/tensorrt/*.pyi "$TMP/tensorrt/"
cp "$SP"/tensorrt_bindings/*.pyi "$TMP/tensorrt_bindings/"
# 1. parameters named `in` (a keyword) -> `in_`
sed -i -E 's/([(,] ?)in: /\1in_: /g' "$TMP/tensorrt_bindings/tensorrt.pyi"
# 2. a required parameter after defaulted ones (add_scale_nd's channel_axis)
sed -i -E 's/power: Weights = None, channel_axis: int\)/power: Weights = None, channel_axis: int = ...)/' "$TMP/tensorrt_bindings/tensorrt.pyi"
# 3. the module-level `bool: DataType` (trt.bool) shadows the builtin in every `-> bool`
#    annotation of the stub; point those at builtins.bool
sed -i -E '/^(bool: DataType|__all__ = )/!s/\bbool\b/builtins.bool/g; s/^import typing\r?$/import typing\nimport builtins/' "$TMP/tensorrt_bindings/tensorrt.pyi"
# 4. the stubs import `tensorrt_libs` (the CUDA libraries wheel), which has no stubs
sed -i -E 's/^import tensorrt_libs as tensorrt_libs\r?$/tensorrt_libs: object/' "$TMP/tensorrt/__init__.pyi" "$TMP/tensorrt_bindings/__init__.pyi"
# Same settings as [tool.mypy] in pyproject.toml, plus: don't report the stubs' own
# remaining inconsistencies (they are not ours); our files are checked against them.
cat > "$TMP/mypy.ini" <<INI
[mypy]
python_version = 3.11
ignore_missing_imports = True
mypy_path = $TMP

[mypy-accelkit.trt.*,accelkit.device]
warn_unused_ignores = True

[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*]
ignore_errors = True
INI
echo "mypy against tensorrt-stubs $("$PY" -c "import importlib.metadata as m; print(m.version('tensorrt-stubs'))") (patched copy in $TMP)"
# accelkit/trt/ (platform, build, runner, memory) and accelkit/device.py. Polygraphy has no
# type information, so its loaders are typed Any; every TensorRT call is checked.
"$PY" -m mypy --config-file "$TMP/mypy.ini" accelkit/trt/*.py accelkit/device.py "$@"
