"""Artifacts and sidecars: one record per file, written together with the file or not at all."""

from __future__ import annotations

import errno
import json

import pytest

from accelkit import files
from accelkit.artifact import Artifact, read_sidecar, sidecar_path
from accelkit.errors import InputError, StorageError
from accelkit.spec import GeneratorSpec, InputSpec

SPEC = GeneratorSpec(inputs=(InputSpec("z", "latent", (4,)),), output_shape=(3, 2, 2))


def _art(path) -> Artifact:
    return Artifact(format="onnx", spec=SPEC, path=path, precision="fp32", source="gen.pt")


def test_each_file_has_its_own_sidecar(tmp_path) -> None:
    """gen.pt, gen.onnx and gen.plan used to share gen.accelkit.json; exporting overwrote a pruned model's record."""
    pt, onnx_, plan = tmp_path / "gen.pt", tmp_path / "gen.onnx", tmp_path / "gen.plan"
    assert len({sidecar_path(pt), sidecar_path(onnx_), sidecar_path(plan)}) == 3
    assert sidecar_path(tmp_path / "g.fp16.onnx").name == "g.fp16.onnx.accelkit.json"
    Artifact(
        format="torch", spec=SPEC, path=pt, precision="fp32", meta={"pruning": {"params_after": 7}}
    ).save(lambda t: t.write_bytes(b"pt"))
    _art(onnx_).save(lambda t: t.write_bytes(b"onnx"))
    assert read_sidecar(pt)["meta"]["pruning"]["params_after"] == 7  # type: ignore[index]
    assert read_sidecar(onnx_)["format"] == "onnx"  # type: ignore[index]


def test_legacy_shared_sidecar_is_read_only_for_its_own_file(tmp_path) -> None:
    (tmp_path / "gen.accelkit.json").write_text(json.dumps({"file": "gen.onnx", "format": "onnx"}))
    assert read_sidecar(tmp_path / "gen.onnx") == {"file": "gen.onnx", "format": "onnx"}
    assert read_sidecar(tmp_path / "gen.pt") is None  # it describes gen.onnx, not gen.pt


def test_save_writes_both_or_refuses(tmp_path) -> None:
    dest = tmp_path / "g.onnx"
    art = _art(dest).save(lambda t: t.write_bytes(b"model"))
    side = json.loads(sidecar_path(dest).read_text())
    assert dest.read_bytes() == b"model" and side["sha256"] == files.sha256_bytes(b"model")
    with pytest.raises(InputError, match="already exists"):
        art.save(lambda t: t.write_bytes(b"other"))
    assert dest.read_bytes() == b"model"


def test_disk_full_between_file_and_sidecar_leaves_neither(tmp_path, monkeypatch) -> None:
    dest = tmp_path / "g.onnx"
    real = files.publish

    def publish(tmp, final):  # the model lands, then the disk is full for the sidecar
        if str(final).endswith(".accelkit.json"):
            raise files.storage_error(
                OSError(errno.ENOSPC, "No space left on device"), f"cannot write {final}"
            )
        return real(tmp, final)

    import accelkit.artifact as artifact_mod

    monkeypatch.setattr(artifact_mod, "publish", publish)
    with pytest.raises(StorageError, match="disk is full"):
        _art(dest).save(lambda t: t.write_bytes(b"model"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_failure_while_writing_leaves_nothing(tmp_path) -> None:
    def boom(tmp) -> None:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _art(tmp_path / "g.onnx").save(boom)
    assert list(tmp_path.iterdir()) == []
