"""Formats that carry code are code, and a sidecar is a claim (issue 22, vectors 1-3).

Every row loads a hostile file through the real CLI in a subprocess (so stderr is what a
user sees) and asserts three things: the marker file the payload would create is absent,
the exit code, and the one ``error:`` line. Each payload is proven real by a row that
loads it with ``--trust-code`` and sees the marker appear; legit files of the same
formats load with and without the flag.

Payloads (``tests/fixtures/code_payloads.py``): a TorchScript ``forward`` calling
``torch.from_file`` (creates any file), a TorchScript ``__setstate__`` (runs inside
``torch.jit.load``), ``.pt2`` archives with an opaque object (``pickle.loads``), a
``use_pickle`` constant, a guard (``exec``) and a symbolic size (``sympify``) that each
run ``touch``, an ONNX sidecar and a pruned model's sidecar naming ``os:system`` as the
architecture to rebuild the reference with.

The library-level checks of the same files run in the fast tier; the CLI rows are slow
(each subprocess imports torch).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from accelkit.errors import LoadError, UntrustedCodeError
from accelkit.loading import load_generator

ROOT = Path(__file__).resolve().parents[2]
ARCH = "tests.fixtures.generators:LatentGen"
QUICK = ["--batch", "1", "--repeats", "3", "--warmup", "1", "--min-time", "0.01"]


@pytest.fixture(scope="module")
def marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("marker") / "pwned"


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory, marker: Path, gen_files) -> dict[str, Path]:
    from tests.fixtures.code_payloads import write_all

    return write_all(tmp_path_factory.mktemp("payloads"), marker, clean_pt2=gen_files["pt2"])


def accelkit(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m accelkit ARGS`` in a subprocess (tests.fixtures importable for --arch)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("ACCELKIT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "accelkit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def refused(
    proc: subprocess.CompletedProcess[str], marker: Path, *patterns: str, code: int = 2
) -> str:
    """Assert: no marker, the exit code, exactly one ``error:`` line holding every pattern, no traceback."""
    assert not marker.exists(), "the payload ran"
    assert proc.returncode == code, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for pattern in patterns:
        assert pattern in errors[0], errors[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    return errors[0]


# ------------------------------------------------------------------ commands (cheap flags)
def _commands(tiny: Path) -> dict[str, Callable[[Path, Path], list[object]]]:
    return {
        "info": lambda f, d: ["info", f],
        "export": lambda f, d: ["export", f, "-o", d / "o.onnx"],
        "bench": lambda f, d: [
            "bench",
            f,
            "--backend",
            "torch",
            "--precision",
            "fp32",
            "--out",
            d / "b",
            *QUICK,
        ],
        "prune": lambda f, d: ["prune", f, "-o", d / "p.pt"],
        "quantize": lambda f, d: ["quantize", f, "-o", d / "q.onnx"],
        "build": lambda f, d: ["build", f, "-o", d / "e.plan"],
        "triton-repo": lambda f, d: ["triton-repo", f, d / "repo"],
        "serve": lambda f, d: ["serve", f],
        "optimize": lambda f, d: [
            "optimize",
            f,
            "--out",
            d / "opt",
            "--time-budget",
            "5s",
            "--fid-weights",
            tiny,
        ],
    }


#: What each command says: the code refusal, or (ONNX-only commands) the format it needs, before loading.
EXPECTED = {
    "info": "--trust-code",
    "export": "--trust-code",
    "bench": "--trust-code",
    "prune": "--trust-code",
    "serve": "--trust-code",
    "optimize": "--trust-code",
    "quantize": "not ONNX",
    "build": "not ONNX",
    "triton-repo": "not ONNX",
}


@pytest.mark.slow
@pytest.mark.parametrize("command", list(EXPECTED))
@pytest.mark.parametrize("payload", ["ts_from_file", "pt2_opaque"])
def test_every_command_refuses_a_code_payload(
    payload: str, command: str, payloads, marker, tiny_weights, tmp_path
) -> None:
    marker.unlink(missing_ok=True)
    args = _commands(tiny_weights)[command](payloads[payload], tmp_path)
    expected = EXPECTED[command]
    if command == "serve" and importlib.util.find_spec("pytriton") is None:
        # serve checks for its extra before it loads anything: still refused, still nothing ran
        expected = "needs the serve extra"
    refused(accelkit(*args, cwd=tmp_path), marker, expected)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        ("ts_setstate", "defines __setstate__"),
        ("ts_custom_op", "custom op namespace ops.evil"),
        ("pt2_pickle", "as a pickle (use_pickle"),
        ("pt2_guard", "guard"),
        ("pt2_sympy", "symbolic expression"),
        ("pt2_target", "calls torch.ops.aten.from_file"),
    ],
)
@pytest.mark.parametrize("command", ["info"])
def test_each_code_payload_is_refused_by_the_commands_that_would_run_it(
    payload: str, pattern: str, command: str, payloads, marker, tiny_weights, tmp_path
) -> None:
    marker.unlink(missing_ok=True)
    args = _commands(tiny_weights)[command](payloads[payload], tmp_path)
    refused(accelkit(*args, cwd=tmp_path), marker, pattern, "--trust-code")


@pytest.mark.slow
@pytest.mark.parametrize(
    "payload", ["ts_from_file", "ts_setstate", "pt2_opaque", "pt2_guard", "pt2_sympy"]
)
def test_payloads_are_real_with_the_trust_flag(payload: str, payloads, marker, tmp_path) -> None:
    """The rows above could not pass by accident: trusted, each payload leaves its marker."""
    marker.unlink(missing_ok=True)
    accelkit("info", payloads[payload], "--trust-code", cwd=tmp_path)
    assert marker.exists(), (
        f"{payload} did not run even when trusted: the refusal rows prove nothing"
    )
    marker.unlink()


@pytest.mark.slow
@pytest.mark.parametrize("flag", [[], ["--trust-code"]])
@pytest.mark.parametrize("fmt", ["torchscript", "pt2"])
def test_legit_code_formats_load_with_and_without_the_flag(
    fmt: str, flag, gen_files, tmp_path
) -> None:
    extra = ["--input", "label:int:5"] if fmt == "pt2" else []
    proc = accelkit("info", gen_files[fmt], *extra, *flag, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["spec"]["output_shape"]


@pytest.mark.slow
def test_huge_declared_tensor_is_refused_before_allocating_even_when_trusted(
    payloads, tmp_path
) -> None:
    for flag in ([], ["--trust-code"]):
        proc = accelkit("info", payloads["pt2_huge"], *flag, cwd=tmp_path)
        refused(proc, tmp_path / "none", "declares 3,600,000,000 values (14.4 GB)", "holds 0 bytes")


# ---------------------------------------------------------------- the library, fast tier
@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        ("ts_from_file", "calls torch.from_file"),
        ("ts_setstate", "defines __setstate__"),
        ("ts_custom_op", "ops.evil"),
        ("pt2_opaque", "custom object"),
        ("pt2_pickle", "use_pickle"),
        ("pt2_guard", "guard"),
        ("pt2_sympy", "symbolic expression"),
        ("pt2_target", "aten.from_file"),
    ],
)
def test_load_generator_refuses_each_payload(payload: str, pattern: str, payloads, marker) -> None:
    marker.unlink(missing_ok=True)
    with pytest.raises(UntrustedCodeError, match=pattern) as info:
        load_generator(payloads[payload])
    assert "--trust-code" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_huge_pt2_is_a_load_error_not_an_allocation(payloads) -> None:
    with pytest.raises(LoadError, match=r"14\.4 GB"):
        load_generator(payloads["pt2_huge"], trust=True)


# ------------------------------------------------------------------------------ sidecars
@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, gen_files) -> tuple[Path, Path]:
    """A state_dict loaded with a user --arch, exported to ONNX (sidecar records the arch)."""
    d = tmp_path_factory.mktemp("exported")
    src = d / "gen.pt"
    src.write_bytes(gen_files["state_dict"].read_bytes())
    proc = accelkit(
        "export", src, "--arch", ARCH, "--batch-range", "1:2:4", "-o", d / "gen.onnx", cwd=d
    )
    assert proc.returncode == 0, proc.stderr
    return src, d / "gen.onnx"


def _bench_fid(onnx: Path, tiny: Path) -> list[object]:
    return [
        "bench",
        onnx,
        "--fid",
        4,
        "--fid-weights",
        tiny,
        "--backend",
        "ort",
        "--precision",
        "fp32",
    ]


def _copy_with_sidecar(onnx: Path, folder: Path) -> Path:
    copy = folder / onnx.name
    for src in (onnx, onnx.with_name(onnx.name + ".accelkit.json")):
        (folder / src.name).write_bytes(src.read_bytes())
    return copy


def _poison_onnx_sidecar(onnx: Path, marker: Path, sha: str | None = None) -> None:
    side = onnx.with_name(onnx.name + ".accelkit.json")
    data = json.loads(side.read_text())
    evil = {"arch": "os:system", "arch_kwargs": {"command": f"touch {marker}"}}
    for p in data["passes"]:
        if p["name"] == "load":
            p["options"].update(evil)
    data["meta"].update(evil)
    if sha is not None:
        data["sha256"] = sha
    side.write_text(json.dumps(data))


@pytest.mark.slow
def test_onnx_sidecar_cannot_name_the_reference_architecture(
    exported, marker, tiny_weights, tmp_path
) -> None:
    src, onnx = exported
    copy = _copy_with_sidecar(onnx, tmp_path)
    _poison_onnx_sidecar(
        copy, marker
    )  # same sha256: the sidecar is bound, its claim is still only a claim
    marker.unlink(missing_ok=True)
    args = _bench_fid(copy, tiny_weights)
    line = refused(
        accelkit(*args, "--out", tmp_path / "b", *QUICK, cwd=tmp_path), marker, "--reference-arch"
    )
    assert "never imports an architecture named in a sidecar" in line
    # the user names the architecture: the reference loads, and nothing from the sidecar ran
    ok = accelkit(
        *args,
        "--out",
        tmp_path / "b2",
        "--reference",
        src,
        "--reference-arch",
        ARCH,
        *QUICK,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_onnx_sidecar_of_another_file_is_ignored_with_a_note(
    exported, marker, tiny_weights, tmp_path
) -> None:
    _, onnx = exported
    copy = _copy_with_sidecar(onnx, tmp_path)
    _poison_onnx_sidecar(copy, marker, sha="0" * 64)
    marker.unlink(missing_ok=True)
    info = accelkit("info", copy, "--json", cwd=tmp_path)
    assert info.returncode == 0 and "does not describe gen.onnx" in info.stderr, info.stderr
    assert json.loads(info.stdout)["architecture"] is None  # nothing of the sidecar was used
    proc = accelkit(*_bench_fid(copy, tiny_weights), "--out", tmp_path / "b", *QUICK, cwd=tmp_path)
    refused(proc, marker, "pass --reference GENERATOR")


@pytest.mark.slow
def test_pruned_sidecar_cannot_name_the_teacher_architecture(
    exported, marker, tiny_weights, tmp_path
) -> None:
    pytest.importorskip("torch_pruning")
    src, _ = exported
    pruned = tmp_path / "g.pruned.pt"
    made = accelkit("prune", src, "--arch", ARCH, "--ratio", "0.25", "-o", pruned, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (
        f"--reference-arch {ARCH}" in made.stdout
    )  # the printed next command names the user's arch
    side = pruned.with_name(pruned.name + ".accelkit.json")
    data = json.loads(side.read_text())
    data["meta"]["teacher"].update(arch="os:system", arch_kwargs={"command": f"touch {marker}"})
    side.write_text(json.dumps(data))
    marker.unlink(missing_ok=True)
    proc = accelkit(
        "bench",
        pruned,
        "--fid",
        4,
        "--fid-weights",
        tiny_weights,
        "--reference",
        src,
        "--backend",
        "torch",
        "--precision",
        "fp32",
        "--out",
        tmp_path / "b",
        *QUICK,
        cwd=tmp_path,
    )
    refused(proc, marker, "--reference-arch", "never imports an architecture named in a sidecar")
