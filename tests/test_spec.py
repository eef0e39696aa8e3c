"""--input / --output-range parsing, overrides, spec serialisation, the sampler."""

from __future__ import annotations

import numpy as np
import pytest

from accelkit.errors import InputError, SpecError
from accelkit.sampler import LatentSampler
from accelkit.spec import (
    GeneratorSpec,
    InputSpec,
    apply_overrides,
    parse_input_flag,
    parse_output_range,
)


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("z:256", InputSpec("z", "latent", (256,))),
        ("z:512x1x1", InputSpec("z", "latent", (512, 1, 1))),
        ("label:int:10", InputSpec("label", "label", (), "int64", 10)),
        ("c:label:4", InputSpec("c", "label", (), "int64", 4)),
        ("image:3x32x32", InputSpec("image", "image", (3, 32, 32))),
        ("lowres:image:3x8x8", InputSpec("lowres", "image", (3, 8, 8))),
        ("w:latent:128", InputSpec("w", "latent", (128,))),
    ],
)
def test_parse_input_flag(flag, expected) -> None:
    assert parse_input_flag(flag) == expected


@pytest.mark.parametrize(
    ("flag", "pattern"),
    [
        ("z", r"is not NAME:SHAPE"),
        ("z:abc", r"'abc' is not a shape"),
        ("z:0", r"must be positive"),
        ("label:int:", r"needs its number of classes"),
        ("x:image:3x32", r"an image is CxHxW"),
        ("x:blob:3", r"unknown kind 'blob'"),
        ("9z:3", r"is not NAME:SHAPE"),
        ("a:b:c:d", r"too many ':'"),
    ],
)
def test_parse_input_flag_errors_explain_the_forms(flag, pattern) -> None:
    with pytest.raises(InputError, match=pattern) as info:
        parse_input_flag(flag)
    assert "z:256" in str(info.value) or "label:int" in str(info.value)


def test_parse_output_range() -> None:
    assert parse_output_range("-1,1") == (-1.0, 1.0)
    assert parse_output_range("0,1") == (0.0, 1.0)
    for bad in ("1", "1,0", "a,b"):
        with pytest.raises(InputError, match=r"--output-range"):
            parse_output_range(bad)


def test_overrides_replace_by_name_then_position() -> None:
    spec = GeneratorSpec(
        inputs=(InputSpec("z", "latent", (8,)), InputSpec("y", "label", (), "int64", 3)),
        output_shape=(3, 8, 8),
    )
    new = apply_overrides(
        spec, [InputSpec("y", "label", (), "int64", 10)], (0.0, 1.0), "uniform", 0.5
    )
    assert new is not None
    assert new.inputs[1].num_classes == 10 and new.inputs[0].shape == (8,)
    assert (
        new.output_range == (0.0, 1.0)
        and new.latent_dist == "uniform"
        and new.truncation_psi == 0.5
    )
    pos = apply_overrides(spec, [InputSpec("noise", "latent", (16,))])
    assert pos is not None and pos.inputs[0] == InputSpec("noise", "latent", (16,))


def test_spec_round_trips_through_json() -> None:
    spec = GeneratorSpec(
        inputs=(InputSpec("z", "latent", (8,)), InputSpec("label", "label", (), "int64", 3)),
        output_shape=(3, 16, 16),
        output_range=(0.0, 1.0),
        truncation_psi=0.7,
        inferred=(("inputs", "z_dim-like attribute"),),
    )
    assert GeneratorSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(SpecError, match=r"malformed generator spec"):
        GeneratorSpec.from_dict({"inputs": [{"kind": "latent"}]})


def test_sampler_is_batch_size_independent_and_seeded() -> None:
    spec = GeneratorSpec(
        inputs=(
            InputSpec("z", "latent", (8,)),
            InputSpec("label", "label", (), "int64", 3),
            InputSpec("image", "image", (3, 16, 16)),
        ),
        output_shape=(3, 16, 16),
    )
    whole = LatentSampler(spec, seed=5).inputs(0, 10)
    parts = list(LatentSampler(spec, seed=5, batch_size=3).batches(10))
    assert [p["z"].shape[0] for p in parts] == [3, 3, 3, 1]
    for name in whole:
        np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), whole[name])
    other = LatentSampler(spec, seed=6).inputs(0, 10)
    assert not np.array_equal(other["z"], whole["z"])
    assert whole["label"].dtype == np.int64 and set(whole["label"]) <= {0, 1, 2}
    assert whole["image"].min() >= -1.0 and whole["image"].max() <= 1.0
    assert abs(float(LatentSampler(spec, seed=1).inputs(0, 500)["z"].std()) - 1.0) < 0.05


def test_truncation_scales_latents() -> None:
    spec = GeneratorSpec(inputs=(InputSpec("z", "latent", (64,)),), truncation_psi=0.5)
    z = LatentSampler(spec, seed=0).inputs(0, 200)["z"]
    assert abs(float(z.std()) - 0.5) < 0.03
