"""The optimize search space comes from the registry: each backend's recipes, the baseline first."""

from __future__ import annotations

from accelkit.autotune.space import enumerate_candidates


def ids(space):  # type: ignore[no-untyped-def]
    return [c.id for c in space.candidates]


def test_no_compile_candidate_where_torch_compile_cannot_run() -> None:
    """torch.compile refuses TorchScript: no compile candidate for a scripted generator, nor for pruned
    variants (prune saves TorchScript); the eager ones stay."""
    got = ids(
        enumerate_candidates(
            device="cpu", backends=("torch",), native_bf16=False, prune_ratios=(0.5,)
        )
    )
    assert "torch-fp32+compile" in got and "pruned50-torch-fp32" in got
    assert "pruned50-torch-fp32+compile" not in got
    got = ids(
        enumerate_candidates(device="cpu", backends=("torch",), native_bf16=False, scripted=True)
    )
    assert got == ["torch-fp32", "torch-fp32+channels_last"]


def test_one_backend_searches_only_its_recipes_plus_the_baseline() -> None:
    """--backend ort does not also search torch variants; the FP32 torch baseline (the reference) stays."""
    got = ids(enumerate_candidates(device="cpu", backends=("ort",), native_bf16=True))
    assert got == ["torch-fp32", "ort-fp32", "ort-fp16", "ort-int8"]


def test_precisions_filter_keeps_the_baseline() -> None:
    got = ids(
        enumerate_candidates(
            device="cpu", backends=("torch", "ort"), native_bf16=True, precisions=("int8",)
        )
    )
    assert got == ["torch-fp32", "ort-int8"]


def test_bf16_only_where_the_cpu_has_it_and_expensive_ones_last() -> None:
    with_bf16 = enumerate_candidates(device="cpu", backends=("torch",), native_bf16=True)
    without = enumerate_candidates(device="cpu", backends=("torch",), native_bf16=False)
    assert "torch-bf16" in ids(with_bf16) and "torch-bf16" not in ids(without)
    assert ids(with_bf16)[-1] == "torch-fp32+compile" and with_bf16.candidates[-1].expensive


def test_every_candidate_runs_under_the_baselines_thread_count() -> None:
    space = enumerate_candidates(
        device="cpu", backends=("torch", "ort"), native_bf16=True, threads=1
    )
    assert all(c.runner_options.get("threads") == 1 for c in space.candidates)


def test_cells_a_backend_cannot_run_are_listed_with_the_reason() -> None:
    space = enumerate_candidates(device="cpu", backends=("torch", "ort"), native_bf16=False)
    assert (
        "torch int8: int8 is an ONNX Q/DQ precision; torch eager does not run it"
        in space.not_offered
    )
    assert any(n.startswith("ort bf16: bf16 is not an ONNX precision") for n in space.not_offered)


def test_candidate_json_form_keeps_its_keys_order_and_plain_types() -> None:
    from accelkit.autotune.space import Candidate

    c = Candidate(
        "ort-int8-keep1",
        "ort",
        "int8",
        "onnx-int8",
        {"provider": "cpu"},
        exclude_groups=("g1",),
        exclude=("a.*",),
        prune_ratio=0.5,
        parent="ort-int8",
        expensive=True,
        recipe_variant="tensorrt",
    )
    d = c.to_dict()
    assert list(d) == [
        "id",
        "backend",
        "precision",
        "source",
        "runner_options",
        "exclude_groups",
        "exclude",
        "fp16_headroom",
        "prune_ratio",
        "parent",
        "variant",
    ]
    assert d["exclude_groups"] == ["g1"] and d["exclude"] == ["a.*"]
    assert d["runner_options"] == {"provider": "cpu"}
    assert d["runner_options"] is not c.runner_options
    assert d["variant"] == "pruned50+tensorrt+keep1"
