"""The shared option value objects: each default, bound and message defined once (accelkit.options)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

import accelkit
from accelkit.errors import InputError
from accelkit.options import (
    SEARCH_TIMING,
    FidSettings,
    Int8Settings,
    OnnxSettings,
    Threads,
    Timing,
    check_globs,
    flags_of,
    parse_batches,
    parse_duration,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("obj", "pattern"),
    [
        (Timing(warmup=-1), "--warmup -1 is out of range"),
        (Timing(repeats=2), "--repeats 2 is too few"),
        (Timing(min_time_s=float("inf")), "--min-time inf is not a finite number"),
        (Threads(0), "--threads 0 is out of range"),
        (Threads(99999), "--threads 99999 is out of range"),
        (FidSettings(n=1), "--fid 1 is out of range"),
        (FidSettings(n=10**11), "--fid 100000000000 is out of range"),
        (FidSettings(mode="bicubic"), "--fid-mode 'bicubic' is unknown"),
        (FidSettings(precision="int8"), "--fid-precision 'int8' is unknown"),
        (Int8Settings(calib=0), "--calib 0 is out of range"),
        (Int8Settings(exclude=("a[",)), "--exclude 'a[' is not a valid glob"),
        (OnnxSettings(opset=12), "--opset 12 is out of range"),
    ],
)
def test_bad_values_are_one_line_errors(obj, pattern) -> None:
    with pytest.raises(InputError, match=re.escape(pattern)):
        obj.validated()


def test_fid_is_required_where_a_command_needs_it() -> None:
    FidSettings(n=0).validated()  # bench: no drift
    with pytest.raises(InputError, match="--fid 0 is out of range"):
        FidSettings(n=0).validated(required=True)


def test_fid_weights_must_be_a_torchscript_archive(tmp_path) -> None:
    text = tmp_path / "w.pt"
    text.write_text("not a model")
    with pytest.raises(InputError, match="is not a model file"):
        FidSettings(n=8, weights=str(text)).validated()
    with pytest.raises(InputError, match="does not exist"):
        FidSettings(n=8, weights=str(tmp_path / "missing.pt")).validated()


def test_fid_weights_that_are_a_torchscript_archive_pass(tiny_weights) -> None:
    assert FidSettings(n=8, weights=str(tiny_weights)).validated().weights == str(tiny_weights)


@pytest.mark.parametrize(
    ("text", "single", "want"),
    [("1,8,32", False, (1, 8, 32)), ("4", True, (4,)), (16, True, (16,)), ((1, 2), False, (1, 2))],
)
def test_one_batch_parser(text, single, want) -> None:
    assert parse_batches(text, single=single) == want


@pytest.mark.parametrize(
    ("text", "single", "pattern"),
    [
        ("0", False, "needs positive integers"),
        ("1,x", False, "not a comma-separated list of integers"),
        ("1,8", True, "tunes for one batch size"),
        ("70000", False, "beyond any generator's memory"),
    ],
)
def test_one_batch_parser_refuses(text, single, pattern) -> None:
    with pytest.raises(InputError, match=pattern):
        parse_batches(text, single=single)


@pytest.mark.parametrize(
    ("text", "seconds"), [("20m", 1200.0), ("90s", 90.0), ("1.5h", 5400.0), (30, 30.0)]
)
def test_durations(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("glob", ["[", "a[b", "x/[0-9"])
def test_unclosed_glob_sets_are_refused(glob) -> None:
    with pytest.raises(InputError, match="not a valid glob"):
        check_globs([glob], "--keep")


def test_closed_and_escaped_globs_pass() -> None:
    check_globs(["net.[0-9]", "head*", "a[[]b"], "--keep")


def test_threads_policy_resolves_once_and_never_on_cuda(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr("accelkit.host.default_threads", lambda: calls.append(1) or 1)
    assert Threads(3).resolve("cpu") == 3 and not calls
    assert Threads().resolve("cuda:0") is None and not calls
    assert Threads().resolve("cpu") == 1 and len(calls) == 1


def test_search_timing_only_shortens_the_repeats() -> None:
    assert dataclasses.replace(SEARCH_TIMING, min_time_s=Timing().min_time_s) == Timing()


def test_every_flag_is_declared_once() -> None:
    """A flag name belongs to one field of one value object: its default, help and bounds live there."""
    seen: dict[str, str] = {}
    for cls in (Timing, Threads, FidSettings, Int8Settings, OnnxSettings):
        for name, fl in flags_of(cls).items():
            for spelling in fl.names:
                assert spelling not in seen, (spelling, seen.get(spelling))
                seen[spelling] = f"{cls.__name__}.{name}"


def test_one_definition_of_each_vocabulary_and_default() -> None:
    """grep finds one definition of each vocabulary and each shared default in the package."""
    src = "\n".join(p.read_text() for p in (ROOT / "accelkit").rglob("*.py"))
    for pattern in (
        r"^\s*PRECISIONS\s*=",
        r"^\s*CALIB_METHODS\s*=",
        r"^\s*EXPORTERS\s*=",
        r"^\s*MAX_BATCH\s*=",
        r"^\s*DEFAULT_PRECISIONS\s*=",
        *(
            rf"^class {n}\b"
            for n in ("Precision", "CalibMethod", "Exporter", "InstanceKind", "LoadTool")
        ),
        r"^class Protocol\(str, Enum\)",
        r"^def _enum\(",
        r"^\s*repeats: int = 5\b",
        r"^DEFAULT_(WARMUP|REPEATS|MIN_TIME_S) = \d",
        r"= \(1, 8, 64\)",
        r"\"1:8:64\"",
        r"calib_samples=64\b",
        r"calib_samples=128\b",
    ):
        hits = re.findall(pattern, src, flags=re.M)
        assert len(hits) <= 1, (pattern, hits)


def test_dir_lists_each_public_name_once() -> None:
    accelkit.Timing  # noqa: B018 - a name already imported must not appear twice
    names = dir(accelkit)
    assert len(names) == len(set(names)) and "Timing" in names and "optimize" in names


def test_help_says_what_the_threads_default_really_is() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "accelkit", "optimize", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "400", "PATH": "", "PYTHONPATH": str(ROOT)},
    )
    text = " ".join(proc.stdout.split())
    assert "1 on a loaded machine" in text and "the torch fp32 baseline included" in text
    assert "free physical cores)" not in text


def test_passes_and_gates_take_their_defaults_from_the_shared_objects() -> None:
    """The INT8/FP16 passes, the interleaved gate and the sensitivity run use the option
    objects' defaults, so a direct (library) call makes the same file as the CLI."""
    import inspect

    from accelkit.gate.interleave import measure_interleaved
    from accelkit.options import Fp16Settings, Int8Settings, Timing
    from accelkit.passes.fp16 import Fp16
    from accelkit.passes.int8 import Int8
    from accelkit.passes.sensitivity import sensitivity, sensitivity_calib

    def defaults(fn: object) -> dict[str, object]:
        return {k: p.default for k, p in inspect.signature(fn).parameters.items()}  # type: ignore[arg-type]

    i8, r8 = defaults(Int8.__init__), Int8Settings()
    assert (i8["calib_samples"], i8["calib_method"], i8["calib_batch"]) == (
        r8.calib,
        r8.calib_method.value,
        r8.calib_batch,
    )
    f16, r16 = defaults(Fp16.__init__), Fp16Settings()
    assert (f16["calib_samples"], f16["headroom"]) == (r16.calib_samples, r16.headroom)
    gi, t = defaults(measure_interleaved), Timing()
    assert (gi["warmup"], gi["min_time_s"]) == (t.warmup, t.min_time_s)
    assert defaults(sensitivity)["calib_method"] == r8.calib_method.value
    assert sensitivity_calib(r8.calib) == min(r8.calib, defaults(sensitivity)["calib_samples"])  # type: ignore[type-var]
    assert sensitivity_calib(16) == 16
