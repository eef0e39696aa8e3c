"""Hostile and broken inputs through every command: one line, the right exit code, nothing written.

Each row of :data:`CASES` is ``(id, command line, expected exit code, pattern of the one
error line)``; ``{tmp}`` in an argument is the test's empty folder and ``{f:NAME}`` a file
built by :func:`_files` (a corrupt checkpoint, a zip named .safetensors, a stats file
with a negative-definite sigma...). Every case checks: exit code, exactly one
``error:`` line containing the pattern, no traceback, and that the folder holds no
new file afterwards (nothing half-written, nothing executed). Add a row to extend it.
"""

from __future__ import annotations

import json
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from accelkit.cli import app

runner = CliRunner()


class RaisesAtBatch4(nn.Module):
    """A generator that works up to batch 8 and raises beyond (an out-of-memory at large batches)."""

    def __init__(self) -> None:
        super().__init__()
        self.z_dim = 8
        self.fc = nn.Linear(8, 3 * 4 * 4)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[0] > 8:
            raise RuntimeError("CUDA out of memory (simulated) at this batch size")
        return torch.tanh(self.fc(z)).view(-1, 3, 4, 4)


class AlwaysRaises(nn.Module):
    """A generator whose forward always raises (a broken user model)."""

    def __init__(self) -> None:
        super().__init__()
        self.z_dim = 8
        self.fc = nn.Linear(8, 3 * 4 * 4)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        raise ValueError("this generator is broken")


def _files(folder: Path) -> dict[str, Path]:
    """Build the hostile/broken files (outside the folder the command writes to)."""
    from safetensors.torch import save_file

    from tests.fixtures.generators import LatentGen, make

    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    z = folder / "zip.safetensors"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.txt", "not a tensor file")
    out["zip_safetensors"] = z
    (folder / "empty.pt").write_bytes(b"")
    out["empty"] = folder / "empty.pt"
    # Random bytes, seeded so every run sees the same file; the first byte is chosen, since
    # 0x08 is how an ONNX protobuf starts and 0x80 how a pickle does (each sniffed differently).
    noise = random.Random(0).randbytes(4096)
    for name, first in (
        ("noise", b"\x13"),
        ("noise_onnxish", b"\x08"),
        ("noise_picklish", b"\x80"),
    ):
        (folder / f"{name}.pt").write_bytes(first + noise[1:])
        out[name] = folder / f"{name}.pt"
    loop = folder / "loop.pt"
    os.symlink(loop.name, loop)  # ELOOP on open: an unreadable file even for root
    out["loop"] = loop
    sd = folder / "latent_sd.pt"
    torch.save(make(LatentGen).state_dict(), sd)
    out["state_dict"] = sd
    st = folder / "latent.safetensors"
    save_file({k: v.contiguous() for k, v in make(LatentGen).state_dict().items()}, str(st))
    out["safetensors"] = st
    ts = folder / "latent.ts.pt"
    torch.jit.save(torch.jit.script(make(LatentGen)), str(ts))
    out["torchscript"] = ts
    rb4 = folder / "raises_b4.ts.pt"
    torch.jit.save(torch.jit.script(RaisesAtBatch4().eval()), str(rb4))
    out["raises_b4"] = rb4
    from tests.fixtures.generators import Unexportable

    unexp = folder / "unexportable_sd.pt"
    torch.save(make(Unexportable).state_dict(), unexp)
    out["unexportable_sd"] = unexp
    sd_broken = folder / "broken_sd.pt"
    torch.save(AlwaysRaises().state_dict(), sd_broken)
    out["broken_sd"] = sd_broken
    # ONNX files
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 8])
    y = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, 4, 4])
    custom = helper.make_node("Mystery", ["z"], ["image"], domain="com.example.secret")
    m = helper.make_model(
        helper.make_graph([custom], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example.secret", 1)],
    )
    onnx.save(m, str(folder / "custom_op.onnx"))
    out["custom_op"] = folder / "custom_op.onnx"
    xh = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 2**40])
    yh = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 2**40])
    ident = helper.make_node("Identity", ["z"], ["image"])
    onnx.save(
        helper.make_model(
            helper.make_graph([ident], "g", [xh], [yh]), opset_imports=[helper.make_opsetid("", 18)]
        ),
        str(folder / "huge_dim.onnx"),
    )
    out["huge_dim"] = folder / "huge_dim.onnx"
    # stats files
    bad = folder / "badzip.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    out["badzip_npz"] = bad
    np.savez(folder / "empty.npz")
    out["empty_npz"] = folder / "empty.npz"
    np.savez(
        folder / "strings.npz", mu=np.array(["a", "b"]), sigma=np.array([["a", "b"], ["c", "d"]])
    )
    out["strings_npz"] = folder / "strings.npz"
    prov = json.dumps(
        {
            "n": 10,
            "extractor_sha256": "0" * 64,
            "extractor_name": "x",
            "resize_mode": "r",
            "input_transform": "t",
            "input_size": 8,
            "dims": 2,
        }
    )
    np.savez(
        folder / "negdef.npz",
        mu=np.zeros(2),
        sigma=-np.eye(2),
        n=np.int64(10),
        provenance=np.array(prov),
    )
    out["negdef_npz"] = folder / "negdef.npz"
    np.savez(
        folder / "ok.npz",
        mu=np.zeros(2),
        sigma=np.eye(2),
        n=np.int64(10),
        provenance=np.array(prov),
    )
    out["ok_npz"] = folder / "ok.npz"
    # reports
    (folder / "notjson.json").write_text("{not json")
    out["notjson"] = folder / "notjson.json"
    good = {"schema_version": 1, "rows": [], "settings": {}, "environment": {}}
    (folder / "badrows.json").write_text(
        json.dumps({**good, "rows": [{"backend": 3, "precision": None}]})
    )
    out["badrows"] = folder / "badrows.json"
    keep = folder / "keep.md"
    keep.write_text("precious")
    out["keep_md"] = keep
    return out


T = "{tmp}"
ARCH_BROKEN = "tests.cli.test_hostile_inputs:AlwaysRaises"

#: (id, argv, exit code, pattern in the one error line)
CASES: list[tuple[str, list[str], int, str]] = [
    # ---- info: unreadable and malformed files, bad loading flags
    ("info-missing", ["info", f"{T}/nope.pt"], 2, "no such file"),
    ("info-folder", ["info", T], 2, "is a folder"),
    ("info-symlink-loop", ["info", "{f:loop}"], 2, "cannot read"),
    ("info-empty", ["info", "{f:empty}"], 2, "empty"),
    ("info-noise", ["info", "{f:noise}"], 2, "not a model file"),
    ("info-noise-onnxish", ["info", "{f:noise_onnxish}"], 2, "not a model file"),
    ("info-noise-picklish", ["info", "{f:noise_picklish}"], 2, "not a model file"),
    (
        "info-zip-as-safetensors",
        ["info", "{f:zip_safetensors}", "--arch", "tests.fixtures.generators:LatentGen"],
        2,
        "safetensors",
    ),
    ("info-huge-input", ["info", "{f:torchscript}", "--input", "z:99999999999"], 2, "--input"),
    (
        "info-bad-arch-kwargs-type",
        [
            "info",
            "{f:state_dict}",
            "--arch",
            "tests.fixtures.generators:LatentGen",
            "--arch-kwargs",
            '{"z_dim": "abc"}',
        ],
        2,
        "--arch",
    ),
    (
        "info-raising-generator",
        ["info", "{f:broken_sd}", "--arch", ARCH_BROKEN],
        2,
        "this generator is broken",
    ),
    ("info-truncation-nan", ["info", "--truncation", "nan"], 2, "--truncation"),
    ("info-range-inf", ["info", "--output-range=-inf,inf"], 2, "--output-range"),
    ("info-range-nan", ["info", "--output-range=nan,1"], 2, "--output-range"),
    # ---- export
    ("export-opset-7", ["export", "-o", f"{T}/g.onnx", "--opset", "7"], 2, "--opset 7"),
    (
        "export-tolerance-nan",
        ["export", "-o", f"{T}/g.onnx", "--tolerance", "nan"],
        2,
        "--tolerance",
    ),
    ("export-unwritable", ["export", "-o", "/proc/accelkit-test.onnx"], 2, "/proc"),
    (
        "export-raising-generator",
        ["export", "{f:broken_sd}", "--arch", ARCH_BROKEN, "-o", f"{T}/b.onnx"],
        2,
        "broken",
    ),
    (
        "bench-raising-generator",
        ["bench", "{f:broken_sd}", "--arch", ARCH_BROKEN, "--out", f"{T}/r"],
        2,
        "broken",
    ),
    (
        "export-fp16-custom-op",
        ["export", "{f:custom_op}", "--fp16", "-o", f"{T}/c.fp16.onnx"],
        2,
        "com.example.secret",
    ),
    (
        "export-fp16-huge-dim",
        ["export", "{f:huge_dim}", "--fp16", "-o", f"{T}/h.fp16.onnx"],
        2,
        "dimension",
    ),
    # ---- quantize
    ("quantize-not-onnx", ["quantize", "{f:torchscript}", "-o", f"{T}/q.onnx"], 2, "not ONNX"),
    (
        "quantize-calib-0",
        ["quantize", "{f:custom_op}", "--calib", "0", "-o", f"{T}/q.onnx"],
        2,
        "--calib 0",
    ),
    # ---- prune
    ("prune-ratio-nan", ["prune", "--ratio", "nan", "-o", f"{T}/p.pt"], 2, "ratio"),
    ("prune-seed-negative", ["prune", "--seed", "-1", "-o", f"{T}/p.pt"], 2, "--seed"),
    ("prune-threads-negative", ["prune", "--threads", "-2", "-o", f"{T}/p.pt"], 2, "--threads"),
    ("prune-lr-nan", ["prune", "--lr", "nan", "-o", f"{T}/p.pt"], 2, "--lr"),
    # ---- bench
    (
        "bench-fid-batch-0",
        ["bench", "--fid", "4", "--fid-batch", "0", "--out", f"{T}/r"],
        2,
        "--fid-batch",
    ),
    ("bench-seed-negative", ["bench", "--seed", "-1", "--out", f"{T}/r"], 2, "--seed"),
    ("bench-threads-negative", ["bench", "--threads", "-2", "--out", f"{T}/r"], 2, "--threads"),
    ("bench-min-time-nan", ["bench", "--min-time", "nan", "--out", f"{T}/r"], 2, "--min-time"),
    ("bench-batch-huge", ["bench", "--batch", "99999999999", "--out", f"{T}/r"], 2, "--batch"),
    ("bench-cuda-without-gpu", ["bench", "--device", "cuda", "--out", f"{T}/r"], 2, "CUDA"),
    ("bench-out-is-a-file", ["bench", "--out", "{f:keep_md}"], 2, "--out"),
    ("bench-out-unwritable", ["bench", "--out", "/proc/accelkit-test-results"], 2, "/proc"),
    # ---- fid
    ("fid-badzip-npz", ["fid", "{f:badzip_npz}", "{f:ok_npz}"], 2, "badzip.npz"),
    ("fid-empty-npz", ["fid", "{f:empty_npz}", "{f:ok_npz}"], 2, "empty.npz"),
    ("fid-string-npz", ["fid", "{f:strings_npz}", "{f:ok_npz}"], 2, "strings.npz"),
    ("fid-negative-definite", ["fid", "{f:negdef_npz}", "{f:ok_npz}"], 2, "sigma"),
    (
        "fid-kid-subsets-negative",
        ["fid", "{f:ok_npz}", "{f:ok_npz}", "--kid-subsets", "-1"],
        2,
        "--kid-subsets",
    ),
    (
        "fid-batch-size-0",
        ["fid", "{f:ok_npz}", "{f:ok_npz}", "--batch-size", "0"],
        2,
        "--batch-size",
    ),
    # ---- compare
    ("compare-not-json", ["compare", "{f:notjson}", "{f:notjson}"], 2, "notjson.json"),
    ("compare-bad-fields", ["compare", "{f:badrows}", "{f:badrows}"], 2, "badrows.json"),
    (
        "compare-markdown-exists",
        ["compare", "{f:badrows}", "{f:badrows}", "--markdown", "{f:keep_md}"],
        2,
        "already exists",
    ),
    # ---- build
    ("build-not-onnx", ["build", "{f:torchscript}", "-o", f"{T}/g.plan"], 2, "not ONNX"),
    ("build-no-gpu", ["build", "{f:custom_op}", "-o", f"{T}/g.plan"], 2, "TensorRT"),
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _files(tmp_path_factory.mktemp("hostile"))


def _expand(argv: list[str], tmp: Path, files: dict[str, Path]) -> list[str]:
    out = []
    for a in argv:
        a = a.replace(T, str(tmp))
        if a.startswith("{f:"):
            a = str(files[a[3:-1]])
        out.append(a)
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "code", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_input_is_one_line_and_writes_nothing(
    hostile, tmp_path, monkeypatch, argv, code, pattern
) -> None:
    monkeypatch.chdir(tmp_path)
    before = {
        p: p.stat().st_mtime_ns for p in hostile.values() if p.exists() and not p.is_symlink()
    }
    res = runner.invoke(app, _expand(argv, tmp_path, hostile))
    assert res.exit_code == code, res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, res.stderr
    assert pattern in errors[0], errors[0]
    assert "Traceback" not in res.output + res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a failed command left files behind"
    after = {p: p.stat().st_mtime_ns for p in before}
    assert after == before, "an input file was modified"


def test_generator_raising_at_one_batch_fails_that_row_only(hostile, tmp_path) -> None:
    """The other rows are still measured and the report is still written; exit 1 (a measured failure)."""
    out = tmp_path / "r"
    res = runner.invoke(
        app,
        [
            "bench",
            str(hostile["raises_b4"]),
            "--backend",
            "torch",
            "--precision",
            "fp32",
            "--batch",
            "1,16",
            "--repeats",
            "3",
            "--warmup",
            "1",
            "--min-time",
            "0.05",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 1, res.output
    rows = {r["batch_size"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert rows[1]["status"] == "ok" and rows[1]["images_per_sec"] > 0
    assert (
        rows[16]["status"] == "failed"
        and "out of memory" in rows[16]["reason"]
        and "\n" not in rows[16]["reason"]
    )
    assert (out / "results.md").is_file() and (out / "results.csv").is_file()


@pytest.mark.slow
def test_generator_that_cannot_export_still_benches_torch(hostile, tmp_path) -> None:
    """A model that runs in torch but breaks the ONNX exporters: torch rows measured, ONNX rows skipped with the reason."""
    out = tmp_path / "r"
    res = runner.invoke(
        app,
        [
            "bench",
            str(hostile["unexportable_sd"]),
            "--arch",
            "tests.fixtures.generators:Unexportable",
            "--precision",
            "fp32",
            "--batch",
            "1",
            "--repeats",
            "3",
            "--warmup",
            "1",
            "--min-time",
            "0.05",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = {r["backend"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert rows["torch"]["status"] == "ok"
    assert rows["ort"]["status"] == "skipped" and "ONNX export failed" in rows["ort"]["reason"]


def test_non_utf8_paths_work(hostile, tmp_path) -> None:
    """A file and an --out folder whose names are not valid UTF-8 (surrogate-escaped by Python)."""
    name = os.fsdecode(b"gen\xff.pt")
    src = tmp_path / name
    src.write_bytes(hostile["torchscript"].read_bytes())
    res = runner.invoke(app, ["info", str(src)])
    assert res.exit_code == 0, res.output
    out = tmp_path / os.fsdecode(b"res\xfe")
    res = runner.invoke(
        app,
        [
            "bench",
            str(src),
            "--backend",
            "torch",
            "--precision",
            "fp32",
            "--batch",
            "1",
            "--repeats",
            "3",
            "--warmup",
            "1",
            "--min-time",
            "0.05",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "results.json").is_file() and (out / "results.md").is_file()


@pytest.mark.slow
def test_bench_refuses_to_overwrite_a_report_without_force(tmp_path) -> None:
    out = tmp_path / "r"
    args = [
        "bench",
        "--backend",
        "torch",
        "--precision",
        "fp32",
        "--batch",
        "1",
        "--repeats",
        "3",
        "--warmup",
        "1",
        "--min-time",
        "0.05",
        "--out",
        str(out),
    ]
    assert runner.invoke(app, args).exit_code == 0
    first = (out / "results.json").read_bytes()
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "--force" in res.stderr
    assert (out / "results.json").read_bytes() == first
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
