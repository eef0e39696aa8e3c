"""The cache spec grammar, its canonical string, and which denoisers each method applies to."""

from __future__ import annotations

from typing import Any

import pytest

from accelkit.diffusion.cache import CacheSpec
from accelkit.errors import InputError


@pytest.mark.parametrize(
    ("text", "canonical", "exact"),
    [
        ("none", "none", True),
        (None, "none", True),
        ("deepcache:3", "deepcache:3:1", False),
        ("DeepCache:1", "deepcache:1:1", True),
        ("deepcache:5:2", "deepcache:5:2", False),
        ("fbcache:0", "fbcache:0.0", True),
        ("fbcache:0.05", "fbcache:0.05", False),
        ("fbcache:1e-1", "fbcache:0.1", False),
    ],
)
def test_parse_and_canonical(text: str | None, canonical: str, exact: bool) -> None:
    spec = CacheSpec.parse(text)
    assert spec.canonical() == str(spec) == canonical
    assert spec.exact is exact
    assert CacheSpec.parse(canonical) == spec  # the canonical string round-trips


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("deepcache:0", "must be >= 1"),
        ("deepcache:3:0", "must be >= 1"),
        ("deepcache:-2", "must be >= 1"),
        ("fbcache:-0.1", "finite number >= 0"),
        ("fbcache:nan", "finite number >= 0"),
        ("fbcache:inf", "finite number >= 0"),
        ("deepcache", "is not a cache setting"),
        ("deepcache:two", "is not a cache setting"),
        ("deepcache:2:1:1", "is not a cache setting"),
        ("fbcache", "is not a cache setting"),
        ("teacache:0.1", "is not a cache setting"),
        ("none:1", "is not a cache setting"),
        ("auto", "is not a cache setting"),
        ("", "is not a cache setting"),
    ],
)
def test_bad_specs_are_one_line_input_errors(text: str, says: str) -> None:
    with pytest.raises(InputError) as exc:
        CacheSpec.parse(text)
    msg = str(exc.value)
    assert says in msg and "\n" not in msg


@pytest.mark.slow
def test_each_method_applies_to_its_family_only(
    ddpm_model: Any, dit_model: Any, sd_model: Any
) -> None:
    assert CacheSpec.parse("deepcache:2").check(ddpm_model).interval == 2
    assert CacheSpec.parse("deepcache:2").check(sd_model).interval == 2
    assert CacheSpec.parse("fbcache:0.1").check(dit_model).threshold == 0.1
    assert not CacheSpec.parse("none").check(dit_model).enabled
    with pytest.raises(InputError, match="DeepCache needs a UNet.*DiTTransformer2DModel"):
        CacheSpec.parse("deepcache:2").check(dit_model)
    with pytest.raises(InputError, match="First-Block-Cache needs a DiT.*UNet2DModel"):
        CacheSpec.parse("fbcache:0.1").check(ddpm_model)
    # the tiny UNets have 2 up blocks: the shallow branch can hold one of them
    with pytest.raises(InputError, match="at most 1"):
        CacheSpec.parse("deepcache:2:2").check(ddpm_model)
