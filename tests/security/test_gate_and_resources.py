"""Issue 22 item 6 through the real CLI, in a subprocess, where stderr and the exit code are what a user sees.

* ``prune`` resumes a distillation checkpoint only from the teacher it was made from;
* ``optimize``'s journal is keyed by the FID extractor's content, not its path;
* a full disk (a real one: a small tmpfs in a user namespace where the sandbox allows it;
  else ``RLIMIT_FSIZE``, which makes writes fail as a full disk does) is a one-line error
  with a non-zero exit and nothing left behind, for ``prune`` and ``bench``;
* a failed row's traceback goes to the report and ``-v``, stderr gets one line;
* a generator whose output shape changes between calls, or whose outputs lie far outside
  the declared range, fails its row with the reason;
* a PNG decompression bomb given to ``--images`` / ``--calib-images`` is refused in one
  line, exit 2, before it is decoded.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.fixtures.generators import LatentGen

ROOT = Path(__file__).resolve().parents[2]
HERE = "tests.security.test_gate_and_resources"
#: Bench flags that keep a row short.
QUICK = ["--repeats", "3", "--warmup", "2", "--min-time", "0.02"]


# ---------------------------------------------------------------------- generators
class WideGen(LatentGen):
    """LatentGen with 64 base channels: 2.3 MB of weights, so its files fill a small disk."""

    def __init__(self) -> None:
        super().__init__(z_dim=16, ngf=64)


class _Small(nn.Module):
    """z (N, 8) -> (N, 3, 8, 8), declared in [-1, 1]; subclasses change what ``forward`` returns."""

    output_range = (-1.0, 1.0)

    def __init__(self) -> None:
        super().__init__()
        self.z_dim = 8
        self.fc = nn.Linear(8, 3 * 8 * 8)

    def image(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(z)).view(-1, 3, 8, 8)


class ShapeShifter(_Small):
    """Returns 3x8x8 images on odd calls and 3x8x4 on even ones: no one speed to measure."""

    calls = 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.image(z)
        return out if self.calls % 2 else out[..., :4].contiguous()


class Loud(_Small):
    """Declares [-1, 1] and returns values up to ±1,800."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return 1800.0 * torch.tanh(4.0 * self.fc(z)).view(-1, 3, 8, 8)


class BreaksAtBatch16(_Small):
    """Works up to batch 8, raises a plain Python error beyond (an unexpected failure, not accelkit's)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[0] > 8:
            raise RuntimeError("kernel launch failed at this batch size (simulated)")
        return self.image(z)


def weights(folder: Path, cls: type[nn.Module], seed: int = 0) -> Path:
    """``cls``'s seeded weights as safetensors (no pickle); load with ``--arch HERE:cls``."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    path = folder / f"{cls.__name__.lower()}-{seed}.safetensors"
    save_file({k: v.contiguous() for k, v in cls().state_dict().items()}, str(path))
    return path


# ---------------------------------------------------------------------- the CLI
def accelkit(
    *args: Any,
    cwd: Path,
    prefix: Sequence[str] = (),
    preexec: Callable[[], None] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``python -m accelkit ARGS`` in a fresh process (optionally behind ``prefix``), this checkout first on the path."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), ACCELKIT_DEBUG="")
    env.pop("ACCELKIT_DEBUG")
    return subprocess.run(
        [*prefix, sys.executable, "-m", "accelkit", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
    )


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line on stderr (and no traceback anywhere)."""
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, res.stderr
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    return errors[0]


# ------------------------------------------------- a distillation checkpoint's teacher
@pytest.mark.slow
def test_prune_refuses_a_checkpoint_distilled_from_another_teacher(tmp_path: Path) -> None:
    a, b = weights(tmp_path, WideGen, seed=1), weights(tmp_path, WideGen, seed=2)
    arch = f"{HERE}:WideGen"
    ck = tmp_path / "shared.ckpt"
    common = ["--arch", arch, "--ratio", "0.5", "--distill-steps", "2", "--distill-batch", "2"]
    first = accelkit("prune", a, *common, "-o", tmp_path / "a.pt", "--checkpoint", ck, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # same options and shapes, another teacher: before, its student was resumed and reported as this one's
    res = accelkit("prune", b, *common, "-o", tmp_path / "b.pt", "--checkpoint", ck, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    line = one_error_line(res)
    assert f"checkpoint {ck} was distilled from another teacher (its weights differs" in line
    assert "--no-resume" in line and not (tmp_path / "b.pt").exists()
    ok = accelkit(
        "prune",
        b,
        *common,
        "-o",
        tmp_path / "b.pt",
        "--checkpoint",
        ck,
        "--no-resume",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    # a checkpoint whose recorded teacher is a pickle payload: read weights-only, refused, nothing runs
    marker = tmp_path / "MARKER"
    torch.save({"step": 1, "student": {}, "config": {"teacher": _Payload(marker)}}, ck)
    res = accelkit("prune", b, *common, "-o", tmp_path / "c.pt", "--checkpoint", ck, cwd=tmp_path)
    assert res.returncode == 2 and "cannot be read" in one_error_line(res), res.stderr
    assert not marker.exists() and not (tmp_path / "c.pt").exists()


class _Payload:
    """Pickles as ``os.system("touch MARKER")``: it must never be unpickled by accelkit."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_a_checkpoint_without_its_teacher_is_not_resumed(tmp_path: Path) -> None:
    """A checkpoint of an older accelkit (no teacher recorded) is refused, not trusted; and the
    identity tells two in-memory teachers of one architecture apart by their weights."""
    from accelkit.artifact import Artifact
    from accelkit.errors import InputError
    from accelkit.loading import infer_torch_spec
    from accelkit.passes.distill import distill, teacher_identity
    from accelkit.passes.prune import Prune
    from tests.fixtures.generators import make

    module = make(LatentGen)
    teacher = Artifact(format="torch", spec=infer_torch_spec(module), module=module)
    student = Prune(0.5)(teacher)
    ck = tmp_path / "d.ckpt"
    kw: dict[str, Any] = {"steps": 2, "batch_size": 2, "eval_samples": 2, "checkpoint": ck}
    distill(teacher, student, **kw)
    state = torch.load(ck, weights_only=True)
    assert state["config"]["teacher"] == teacher_identity(teacher, module)
    other = make(LatentGen, seed=1)
    assert (
        teacher_identity(teacher.derive(module=other), other)["weights_sha256"]
        != state["config"]["teacher"]["weights_sha256"]
    )
    with pytest.raises(InputError, match="distilled from another teacher"):
        distill(teacher.derive(module=other), student, **kw)
    del state["config"]["teacher"]
    torch.save(state, ck)
    with pytest.raises(InputError, match="does not record which teacher"):
        distill(teacher, student, **kw)


# ------------------------------------------------------- optimize's journal key
def test_optimize_journal_is_keyed_by_the_extractor_content(
    tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The extractor file replaced at the same path: the journal of the old one is not resumed."""
    import accelkit as ak
    from accelkit.autotune import search
    from accelkit.errors import InputError
    from tests.fixtures.make_tiny_extractor import build

    class Started(Exception):
        """The search began: the journal was accepted."""

    def started(self: Any) -> Any:
        raise Started

    monkeypatch.setattr(search.Search, "run", started)
    gen = tmp_path / "gen.safetensors"
    gen.write_bytes(weights(tmp_path, LatentGen).read_bytes())
    extractor = tmp_path / "fid.pt"
    shutil.copyfile(tiny_weights, extractor)
    opts = ak.OptimizeOptions(
        fid=ak.FidSettings(n=8, weights=str(extractor)),
        out=tmp_path / "opt",
        int8=ak.Int8Settings(calib=8),
    )
    load = ak.LoadOptions(generator=str(gen), arch="tests.fixtures.generators:LatentGen")
    with pytest.raises(Started):
        ak.optimize(load, opts)
    with pytest.raises(Started):  # same extractor: resumed (the search starts)
        ak.optimize(load, opts)
    build(extractor, seed=1)  # another network, same path
    with pytest.raises(InputError, match="holds a search with other options"):
        ak.optimize(load, opts)


# --------------------------------------------------------------------- a full disk
def _userns_tmpfs_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt && echo ok"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return probe.returncode == 0 and probe.stdout.strip() == "ok"


#: What is left in the output folder, printed by the command run on the tmpfs.
LISTING = "--- left behind:"


class FullDisk:
    """Runs a command whose output folder is full: a 256 KiB tmpfs, or a 256 KiB file-size limit."""

    def __init__(self, how: str, root: Path) -> None:
        self.how, self.root = how, root
        self.dir = root / "disk"
        self.dir.mkdir()

    def run(self, *args: Any) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        """``accelkit ARGS`` writing into :attr:`dir`; returns the result and what was left in ``dir``."""
        if self.how == "tmpfs":
            script = (
                f'mount -t tmpfs -o size=256k none "{self.dir}" || exit 99; "$@"; rc=$?; '
                f'echo "{LISTING}" >&2; find "{self.dir}" -mindepth 1 >&2; exit $rc'
            )
            res = accelkit(
                *args, cwd=self.root, prefix=["unshare", "-Urm", "sh", "-c", script, "sh"]
            )
            assert res.returncode != 99, res.stderr
            res.stderr, _, listing = res.stderr.partition(LISTING)
            return res, listing.split()

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

        res = accelkit(*args, cwd=self.root, preexec=limit)
        return res, [str(p) for p in self.dir.rglob("*")]


@pytest.fixture(params=["tmpfs", "fsize"])
def full_disk(request: pytest.FixtureRequest, tmp_path: Path) -> FullDisk:
    if request.param == "tmpfs" and not _userns_tmpfs_works():
        pytest.skip(
            "this sandbox cannot mount a tmpfs in a user namespace (unshare -Urm); the fsize case covers it"
        )
    return FullDisk(request.param, tmp_path)


@pytest.mark.slow
def test_prune_on_a_full_disk_is_one_line_and_leaves_nothing(full_disk: FullDisk) -> None:
    src = weights(full_disk.root, WideGen)
    out = full_disk.dir / "pruned.pt"
    res, left = full_disk.run(
        "prune", src, "--arch", f"{HERE}:WideGen", "--ratio", "0.3", "-o", out
    )
    assert res.returncode == 2, res.stderr  # was: SIGABRT (-6) and a C++ stack dump
    line = one_error_line(res)
    assert line.startswith(f"error: cannot write {out}: ")
    assert ("the disk is full" if full_disk.how == "tmpfs" else "ulimit -f") in line
    assert "terminate called" not in res.stderr and left == []  # no .tmp, no sidecar


@pytest.mark.slow
def test_bench_on_a_full_disk_is_one_line_and_leaves_nothing(full_disk: FullDisk) -> None:
    src = weights(full_disk.root, WideGen)
    out = full_disk.dir / "report"
    res, left = full_disk.run(
        "bench", src, "--arch", f"{HERE}:WideGen", "--batch", "1", *QUICK, "--out", out
    )
    assert res.returncode == 2, res.stdout + res.stderr  # was: exit 0, rows "skipped: disk is full"
    line = one_error_line(res)
    if full_disk.how == "tmpfs":  # the export (in /tmp) fits; its copy into the full --out does not
        assert (
            line.startswith(f"error: cannot write {out}/artifacts/") and "the disk is full" in line
        )
    else:  # every file over 256 KiB fails, the exporter's own in /tmp first
        assert line.startswith("error: cannot write the ONNX export in ") and "ulimit -f" in line
    assert "skipped" not in res.stdout and left == []


# ------------------------------------------------------- rows that fail, and why
def _bench(tmp_path: Path, cls: type[nn.Module], *extra: Any) -> tuple[Any, dict[int, Any]]:
    src = weights(tmp_path, cls)
    out = tmp_path / f"{cls.__name__}-report"
    res = accelkit(
        "bench", src, "--arch", f"{HERE}:{cls.__name__}", "--backend", "torch", "--precision",
        "fp32", *QUICK, "--out", out, *extra, cwd=tmp_path,
    )  # fmt: skip
    rows = {r["batch_size"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    return res, rows


@pytest.mark.slow
def test_a_failed_rows_traceback_goes_to_the_report_and_v_only(tmp_path: Path) -> None:
    res, rows = _bench(tmp_path, BreaksAtBatch16, "--batch", "1,16")
    assert res.returncode == 1, res.stderr  # a measured failure
    assert rows[1]["status"] == "ok" and rows[16]["status"] == "failed"
    assert "kernel launch failed" in rows[16]["reason"] and "\n" not in rows[16]["reason"]
    trace = rows[16]["extra"]["traceback"]
    assert trace.startswith("Traceback (most recent call last)") and "in forward" in trace
    assert "Traceback" not in res.stderr
    said = [ln for ln in res.stderr.splitlines() if "kernel launch failed" in ln]
    assert len(said) == 1 and said[0].startswith("WARNING ")
    verbose = accelkit(
        "-v", "bench", tmp_path / "breaksatbatch16-0.safetensors", "--arch", f"{HERE}:BreaksAtBatch16",
        "--backend", "torch", "--precision", "fp32", "--batch", "16", *QUICK,
        "--out", tmp_path / "v", cwd=tmp_path,
    )  # fmt: skip
    assert "Traceback (most recent call last)" in verbose.stderr


@pytest.mark.slow
def test_an_output_shape_that_changes_between_calls_is_refused_at_load(tmp_path: Path) -> None:
    src = weights(tmp_path, ShapeShifter)
    out = tmp_path / "report"
    res = accelkit(
        "bench", src, "--arch", f"{HERE}:ShapeShifter", "--backend", "torch", "--precision",
        "fp32", *QUICK, "--out", out, "--batch", "2", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2, res.stdout + res.stderr
    line = one_error_line(res)
    assert "output shape changes between calls" in line and "(3x8x8, then 3x8x4" in line
    assert not (out / "results.json").exists()


@pytest.mark.slow
def test_outputs_far_outside_the_declared_range_fail_the_row(tmp_path: Path) -> None:
    res, rows = _bench(tmp_path, Loud, "--batch", "2")
    assert res.returncode == 1, res.stdout + res.stderr
    row = rows[2]
    assert row["status"] == "failed" and row["images_per_sec"] is None
    assert "far outside its declared output range [-1, 1]" in row["reason"]
    assert "--output-range" in row["reason"]
    declared, rows = _bench(tmp_path, Loud, "--batch", "2", "--output-range=-1800,1800", "--force")
    assert declared.returncode == 0 and rows[2]["status"] == "ok", declared.stderr


def test_range_tolerance_lets_a_small_overshoot_pass() -> None:
    import numpy as np

    from accelkit.errors import SpecError
    from accelkit.quality.images import RANGE_TOLERANCE, check_range

    check_range(np.array([-1.4, 1.4]), (-1.0, 1.0))  # a last layer without tanh overshoots a little
    check_range(np.array([-0.2, 1.2]), (0.0, 1.0))
    for bad, rng in (([0.0, 255.0], (0.0, 1.0)), ([-1800.0, 3.0], (-1.0, 1.0))):
        with pytest.raises(SpecError, match="far outside"):
            check_range(np.array(bad), rng)
    assert RANGE_TOLERANCE == 0.5


# -------------------------------------------------------- decompression bombs
def png_bomb(path: Path, width: int, height: int) -> Path:
    """A 1-bit greyscale PNG declaring ``width x height`` pixels, all zero: a few KB on disk."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="module")
def img2img(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fixtures.generators import Img2Img, make

    folder = tmp_path_factory.mktemp("img2img")
    path = folder / "img2img.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in make(Img2Img).state_dict().items()}, str(path))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("width", "height"),
    [(9000, 9000), (20000, 20000)],  # over accelkit's limit; over PIL's own bomb error (2 x 89 M)
    ids=["81M-pixels", "400M-pixels"],
)
def test_a_png_bomb_given_as_images_is_refused_before_decoding(
    tmp_path: Path, img2img: Path, width: int, height: int
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    bomb = png_bomb(folder / "bomb.png", width, height)
    assert bomb.stat().st_size < 200_000
    arch = "tests.fixtures.generators:Img2Img"
    for args in (
        ["bench", img2img, "--arch", arch, "--backend", "torch", "--precision", "fp32",
         "--batch", "1", *QUICK, "--images", folder, "--out", tmp_path / "r"],
        ["export", img2img, "--arch", arch, "--int8", "--calib", "8", "--calib-images", folder,
         "-o", tmp_path / "q.onnx"],
    ):  # fmt: skip
        res = accelkit(*args, cwd=tmp_path, timeout=120)
        assert res.returncode == 2, res.stderr
        line = one_error_line(res)
        assert f"image {bomb} declares" in line and "decompression bomb" in line
        assert not (tmp_path / "q.onnx").exists()


def test_load_image_refuses_a_bomb_from_its_header(tmp_path: Path) -> None:
    """The check reads the declared size only: refusing 400 M pixels takes no memory and no time."""
    import time

    from accelkit.errors import InputError
    from accelkit.quality.images import MAX_IMAGE_PIXELS, load_image

    for side in (9000, 20000):
        bomb = png_bomb(tmp_path / f"bomb{side}.png", side, side)
        t0 = time.perf_counter()
        with pytest.raises(
            InputError, match=f"declares {side} x {side} pixels|more pixels than PIL"
        ):
            load_image(bomb)
        assert time.perf_counter() - t0 < 1.0
    fine = png_bomb(tmp_path / "fine.png", 64, 32)
    assert load_image(fine).shape == (32, 64, 3) and 64 * 32 < MAX_IMAGE_PIXELS
