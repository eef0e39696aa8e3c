"""Issue 22 item 6, the loading cases: each is the user's mistake (or a hostile file), so one line and exit 2.

A 5,000-character path, architecture arguments asking for 81.9 TB (given or stored in the
checkpoint), 100,000-deep JSON (sidecar, ``--arch-kwargs``, a stored spec), a generator
that never returns (``info`` and ``bench``), and one whose output shape changes between calls.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from accelkit.cli import app
from accelkit.errors import InputError, LoadError, SpecError
from accelkit.loading import load_generator
from accelkit.loading.safe_read import call_with_timeout, parse_json

runner = CliRunner()


def one_line_exit_2(args: list[str], *patterns: str) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in res.output, res.output
    for p in patterns:
        assert p in errors[0], errors[0]
    return errors[0]


def test_a_5000_character_path_is_a_user_mistake() -> None:
    line = one_line_exit_2(["info", "a" * 5000], "cannot use the path", "5,000 characters")
    assert len(line) < 400  # the path is cut, not echoed


@pytest.mark.slow
def test_architecture_arguments_asking_for_terabytes_are_refused_before_allocating(
    tmp_path,
) -> None:
    one_line_exit_2(
        ["info", "dcgan", "--arch", "dcgan", "--arch-kwargs", '{"ngf": 200000}'],
        "of memory is available",
        "TB",
    )
    ck = tmp_path / "ck.pt"
    sd = load_generator("dcgan").module.state_dict()
    torch.save({"G_ema": sd, "accelkit_arch": "dcgan", "accelkit_arch_kwargs": {"ngf": 200000}}, ck)
    one_line_exit_2(["info", str(ck)], "of memory is available", "checkpoint")


def test_architecture_arguments_that_overflow_are_refused() -> None:
    with pytest.raises(InputError, match="too large to exist"):
        load_generator("dcgan", arch="dcgan", arch_kwargs={"ngf": 10**12})


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.slow
def test_a_100000_deep_sidecar_is_one_line(gen_files, tmp_path) -> None:
    from accelkit.passes.export import OnnxFromTorch

    art = load_generator(gen_files["torchscript"])
    onnx = OnnxFromTorch(tmp_path / "g.onnx", batch_range=(1, 2, 2))(art).path
    assert onnx is not None
    onnx.with_name(onnx.name + ".accelkit.json").write_text(DEEP)
    one_line_exit_2(["info", str(onnx)], "nested deeper")


def test_deep_arch_kwargs_is_one_line() -> None:
    deep = "[" * 50_000 + "]" * 50_000  # one argv item cannot hold 100,000 levels (128 KB)
    one_line_exit_2(
        ["info", "dcgan", "--arch", "dcgan", "--arch-kwargs", deep],
        "--arch-kwargs",
        "nested deeper",
    )
    with pytest.raises(InputError, match="nested deeper than 32"):
        parse_json('{"a":' * 40 + "1" + "}" * 40, "x", "fix", error=InputError, max_depth=32)


def test_a_deep_stored_spec_is_one_line(gen_files, tmp_path) -> None:
    p = tmp_path / "deep.ts.pt"
    torch.jit.save(
        torch.jit.load(str(gen_files["torchscript"])),
        str(p),
        _extra_files={"accelkit_spec.json": DEEP},
    )
    one_line_exit_2(["info", str(p)], "nested deeper")


class Sleepy(torch.nn.Module):
    """A generator whose forward never returns (a stand-in for a hang)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 48)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        import time

        time.sleep(3600)
        return torch.tanh(self.fc(z)).view(-1, 3, 4, 4)


class Shifty(torch.nn.Module):
    """A generator whose output width changes on every call."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 48)
        self.calls = 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = torch.tanh(self.fc(z)).view(-1, 3, 4, 4)
        return out[..., : 4 - self.calls % 2]


@pytest.mark.parametrize("command", ["info", "bench"])
def test_a_generator_that_never_returns_is_timed_out(command, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ACCELKIT_PROBE_TIMEOUT", "0.5")
    ck = tmp_path / "sleepy.pt"
    torch.save(Sleepy().state_dict(), ck)
    extra = ["--out", str(tmp_path / "b"), "--repeats", "3"] if command == "bench" else []
    one_line_exit_2(
        [command, str(ck), "--arch", f"{__name__}:Sleepy", *extra],
        "did not return within 0.5 s",
        "ACCELKIT_PROBE_TIMEOUT",
    )


def test_call_with_timeout_passes_results_and_errors_through() -> None:
    assert call_with_timeout(lambda: 3, "probed", 5) == 3
    with pytest.raises(ZeroDivisionError):
        call_with_timeout(lambda: 1 / 0, "probed", 5)


def test_output_shape_changing_between_calls_is_refused(tmp_path) -> None:
    ck = tmp_path / "shifty.pt"
    torch.save(Shifty().state_dict(), ck)
    one_line_exit_2(
        ["info", str(ck), "--arch", f"{__name__}:Shifty"], "output shape changes between calls"
    )
    with pytest.raises(SpecError, match="3x4x3, then 3x4x4"):
        load_generator(ck, arch=f"{__name__}:Shifty")


def test_a_corrupt_pt2_member_list_is_a_load_error(gen_files, tmp_path) -> None:
    bad = tmp_path / "bad.pt2"
    buf = io.BytesIO()
    with zipfile.ZipFile(gen_files["pt2"]) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("model_weights_config.json"):
                dst.writestr(info.filename, src.read(info.filename))
    bad.write_bytes(buf.getvalue())
    with pytest.raises(LoadError, match="model_weights_config.json is missing"):
        load_generator(bad)


def test_sidecar_spec_json_errors_are_load_errors(tmp_path) -> None:
    from accelkit.artifact import read_sidecar

    f = tmp_path / "x.onnx"
    f.write_bytes(b"\x08")
    f.with_name("x.onnx.accelkit.json").write_text(json.dumps({"a": 1})[:-1])
    with pytest.raises(LoadError, match="not valid JSON"):
        read_sidecar(f)


def test_paths_the_os_refuses_are_input_errors() -> None:
    with pytest.raises(InputError):
        load_generator("bad\0name.pt")
    with pytest.raises(InputError, match="no such file"):
        load_generator(Path("/nonexistent/dir/g.pt"))
