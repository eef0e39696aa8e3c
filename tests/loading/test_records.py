"""The loading flags travel whole: recorded with every artifact, turned back into CLI flags."""

from __future__ import annotations

import pytest

from accelkit.artifact import Artifact
from accelkit.loading import (
    LoadRecord,
    load_generator,
    load_record,
    reference_flags,
    reproduce_flags,
    shell_join,
)
from accelkit.spec import GeneratorSpec, InputSpec

ARCH = "tests.fixtures.generators:LatentGen"


def test_a_record_round_trips_and_becomes_flags() -> None:
    rec = LoadRecord(
        arch="g.py:G",
        arch_kwargs={"nz": 100},
        inputs=("z:latent:100",),
        output_range=(-1.0, 1.0),
        latent_dist="uniform",
        truncation=0.7,
        output_shape=(1, 28, 28),
        hw_range=(0, 0, 0),
        trust=True,
    )
    assert LoadRecord.from_dict(rec.to_dict()) == rec
    assert rec.flags() == [
        "--arch",
        "g.py:G",
        "--arch-kwargs",
        '{"nz": 100}',
        "--input",
        "z:latent:100",
        "--output-range=-1,1",
        "--latent-dist",
        "uniform",
        "--truncation",
        "0.7",
        "--output-shape",
        "1x28x28",
        "--dynamic-hw",
        "--trust-code",
    ]
    assert rec.arch_flags("--reference-arch") == [
        "--reference-arch",
        "g.py:G",
        "--reference-arch-kwargs",
        '{"nz": 100}',
    ]
    assert shell_join(["a b", "c"]) == "'a b' c"


def test_a_malformed_record_is_dropped_field_by_field() -> None:
    rec = LoadRecord.from_dict(
        {"arch": 3, "inputs": "z:1", "output_shape": [1, "x", 2], "latent_dist": "evil"}
    )
    assert rec == LoadRecord()
    assert LoadRecord.from_dict({"trust_pickle": True}).trust  # sidecars written before the rename


def test_load_records_the_flags_the_user_gave(gen_files) -> None:
    art = load_generator(gen_files["state_dict"], arch=ARCH, inputs=["z:16"], truncation_psi=0.5)
    assert reproduce_flags(art) == ["--arch", ARCH, "--input", "z:latent:16", "--truncation", "0.5"]
    assert load_record(art).arch == ARCH
    plain = load_generator(gen_files["torchscript"])
    assert reproduce_flags(plain) == []


def test_reference_flags_name_a_user_architecture_only() -> None:
    spec = GeneratorSpec(inputs=(InputSpec("z", "latent", (8,)),), output_shape=(3, 4, 4))

    def built(arch: str | None) -> Artifact:
        opts = {"path": "g.pt", "format": "torch_save", **LoadRecord(arch=arch).to_dict()}
        return Artifact("onnx", spec, source="/m/g.pt", passes=[{"name": "load", "options": opts}])

    assert reference_flags(built(None)) == []
    assert reference_flags(built("dcgan")) == []  # bundled: followed from the sidecar
    assert reference_flags(built("my.py:G")) == [
        "--reference",
        "/m/g.pt",
        "--reference-arch",
        "my.py:G",
    ]


@pytest.mark.parametrize("key", ["output_shape", "inputs"])
def test_record_keys_stay_those_older_sidecars_use(key) -> None:
    assert key in LoadRecord(inputs=("z:1",), output_shape=(1, 2, 2)).to_dict()
