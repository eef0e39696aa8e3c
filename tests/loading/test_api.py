"""The Python API of loading: the documented argument forms work, bad values are accelkit's one-line errors."""

from __future__ import annotations

import pytest

from accelkit.errors import AccelkitError, InputError
from accelkit.loading import load_generator
from accelkit.pipelines.options import LoadOptions
from accelkit.spec import InputSpec

ARCH = "tests.fixtures.generators:LatentGen"


def test_inputs_as_flag_texts_or_input_specs(gen_files) -> None:
    a = load_generator(gen_files["state_dict"], arch=ARCH, inputs=["z:16"])
    b = load_generator(gen_files["state_dict"], arch=ARCH, inputs=[InputSpec("z", "latent", (16,))])
    c = load_generator(gen_files["state_dict"], arch=ARCH, inputs="z:16")
    assert a.spec.inputs == b.spec.inputs == c.spec.inputs == (InputSpec("z", "latent", (16,)),)


def test_load_options_object(gen_files) -> None:
    art = load_generator(
        LoadOptions(generator=str(gen_files["state_dict"]), arch=ARCH, inputs=("z:16",))
    )
    assert art.spec.output_shape == (3, 16, 16)
    with pytest.raises(InputError, match="not both"):
        load_generator(LoadOptions(generator=str(gen_files["state_dict"])), arch=ARCH)


def test_string_forms_of_shapes_and_ranges(gen_files) -> None:
    art = load_generator(
        gen_files["state_dict"],
        arch=ARCH,
        output_range="-1,1",
        output_shape="3x16x16",
        arch_kwargs='{"z_dim": 16}',
    )
    assert art.spec.output_range == (-1.0, 1.0) and art.spec.output_shape == (3, 16, 16)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"inputs": [123]}, "inputs must be InputSpec objects or --input texts"),
        ({"inputs": 5}, "inputs must be a list"),
        ({"inputs": ["z:abc"]}, "--input"),
        ({"output_range": "a"}, "--output-range"),
        ({"output_range": (1, 0)}, "low < high"),
        ({"output_shape": (1, 28)}, "output_shape must be"),
        ({"hw_range": "1:2"}, "--hw-range"),
        ({"arch": 3}, "arch must be"),
        ({"arch_kwargs": [1]}, "arch_kwargs must be a dict"),
        ({"arch_kwargs": "{"}, "not valid JSON"),
        ({"latent_dist": "cauchy"}, "latent_dist"),
        ({"truncation_psi": -1}, "truncation_psi"),
        ({"truncation_psi": "x"}, "truncation_psi"),
        ({"trust": "yes"}, "trust must be"),
    ],
)
def test_bad_values_are_one_line_input_errors(kwargs, pattern) -> None:
    with pytest.raises(InputError, match=pattern) as info:
        load_generator("dcgan", **kwargs)
    assert "\n" not in str(info.value)


def test_a_bad_path_type_is_an_input_error() -> None:
    with pytest.raises(AccelkitError, match="takes a path"):
        load_generator(123)  # type: ignore[arg-type]


def test_docs_loading_example_runs_as_written(tmp_path, monkeypatch) -> None:
    """The "Loading your own checkpoint" block of docs/python-api.md, executed as written."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "python-api.md").read_text()
    section = text.split("## Loading your own checkpoint", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    monkeypatch.chdir(tmp_path)
    printed: list[str] = []
    namespace = {
        "print": lambda *a: printed.append(" ".join(map(str, a))),
        "__name__": "docs_example",
    }
    exec(compile(code, "python-api.md", "exec"), namespace)
    lines = printed[0].splitlines()
    assert "input  z: latent float32[64]" in lines
    assert "output float32[1x28x28] in [-1, 1]" in lines
    gen = namespace["gen"]
    assert gen.meta["arch"] == "docs_example:Generator" and gen.meta["checkpoint_key"] == "netG"
