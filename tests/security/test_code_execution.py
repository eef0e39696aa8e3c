"""Nothing in a file decides what code runs: one test per known vector, each proving the marker never appears.

Each hostile file is built here, the way an attacker would write it, and loaded through
the CLI (``accelkit info``) and the library without ``--trust-code``.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from accelkit.cli import app
from accelkit.errors import InputError
from accelkit.loading import load_generator
from tests.fixtures.generators import LatentGen, make

runner = CliRunner()


def _refused(args: list[str], marker: Path, pattern: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and pattern in errors[0], res.stderr
    assert "Traceback" not in res.output
    assert not marker.exists(), "the file ran code"


@pytest.mark.parametrize(
    ("arch", "kwargs_of"),
    [
        ("os:system", lambda m: {"command": f"touch {m}"}),
        ("subprocess:Popen", lambda m: {"args": ["touch", str(m)]}),
        ("posix:system", lambda m: {"command": f"touch {m}"}),
    ],
    ids=["os.system", "subprocess.Popen", "posix.system"],
)
@pytest.mark.parametrize("key", ["accelkit_arch", "arch"])
def test_checkpoint_dict_cannot_name_an_importable_architecture(
    tmp_path, arch, kwargs_of, key
) -> None:
    marker = tmp_path / "pwned"
    ck = tmp_path / "ck.pt"
    torch.save(
        {"G_ema": make(LatentGen).state_dict(), key: arch, f"{key}_kwargs": kwargs_of(marker)}, ck
    )
    _refused(["info", str(ck)], marker, "never imports code named inside a file")
    with pytest.raises(InputError, match="pass it yourself with --arch"):
        load_generator(ck)
    assert not marker.exists()


def test_checkpoint_dict_cannot_name_a_python_file(tmp_path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').close()\nclass Evil:\n    pass\n")
    ck = tmp_path / "ck.pt"
    torch.save({"G_ema": make(LatentGen).state_dict(), "accelkit_arch": f"{evil}:Evil"}, ck)
    _refused(["info", str(ck)], marker, "never imports code named inside a file")


def test_safetensors_metadata_cannot_name_an_architecture(tmp_path) -> None:
    from safetensors.torch import save_file

    marker = tmp_path / "pwned"
    st = tmp_path / "g.safetensors"
    sd = {k: v.contiguous() for k, v in make(LatentGen).state_dict().items()}
    save_file(
        sd,
        str(st),
        metadata={
            "accelkit.arch": "os:system",
            "accelkit.arch_kwargs": json.dumps({"command": f"touch {marker}"}),
        },
    )
    _refused(["info", str(st)], marker, "never imports code named inside a file")


def test_stored_bundled_architecture_is_still_followed(tmp_path) -> None:
    """A bundled name stored in the file is accelkit's own code: the bundled checkpoints rely on it."""
    art = load_generator("dcgan")
    assert art.meta["arch"] == "dcgan" and art.format == "torch"


class _Payload:
    """Unpickling this runs ``os.system`` (what a malicious sample input would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def _rewrite_member(archive: Path, suffix: str, data: bytes) -> None:
    tmp = archive.with_suffix(".tmp")
    with (
        zipfile.ZipFile(archive) as src,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as dst,
    ):
        hit = False
        for info in src.infolist():
            payload = src.read(info.filename)
            if info.filename.endswith(suffix):
                payload, hit = data, True
            dst.writestr(info, payload)
    assert hit, f"no member ending in {suffix}"
    tmp.replace(archive)


def _pt2(tmp_path: Path) -> Path:
    m = make(LatentGen)
    ep = torch.export.export(m, (torch.randn(2, 16),))
    p = tmp_path / "prog.pt2"
    torch.export.save(ep, str(p))
    return p


def test_pt2_with_a_malicious_sample_input_pickle_is_never_unpickled(tmp_path) -> None:
    """accelkit never uses a program's sample inputs: they are left out before loading, so a
    hostile pickle there never runs (the file loads, and the marker never appears)."""
    marker = tmp_path / "pwned"
    p = _pt2(tmp_path)
    buf = io.BytesIO()
    torch.save(_Payload(marker), buf)
    _rewrite_member(p, "data/sample_inputs/model.pt", buf.getvalue())
    res = runner.invoke(app, ["info", str(p)])
    assert res.exit_code == 0, res.output
    art = load_generator(p)
    assert art.program is not None and art.spec.inputs[0].shape == (16,)
    assert not marker.exists()
    assert torch.load is torch.serialization.load  # the guard is removed again


def test_pt2_with_clean_contents_still_loads(tmp_path) -> None:
    art = load_generator(_pt2(tmp_path))
    assert art.format == "torch" and art.program is not None
