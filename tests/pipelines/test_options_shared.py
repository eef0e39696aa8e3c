"""The command options compose the shared value objects (one default, one rule each)."""

from __future__ import annotations

import pytest

from accelkit.errors import InputError
from accelkit.options import FidSettings, Threads
from accelkit.pipelines.options import PRUNE_CHECK_N, FidOptions, PruneOptions


def test_prune_options_wrap_numbers_in_the_shared_objects() -> None:
    opts = PruneOptions(fid=100, threads=2).validated()
    assert opts.fid == FidSettings(n=100)
    assert opts.threads == Threads(2)
    assert PruneOptions().fid.n == PRUNE_CHECK_N and PruneOptions().threads.count is None


def test_prune_options_use_the_shared_rules() -> None:
    with pytest.raises(InputError, match=r"^--fid 1 "):
        PruneOptions(fid=1).validated()
    with pytest.raises(InputError, match=r"^--threads 0 "):
        PruneOptions(threads=0).validated()


def test_fid_options_share_fid_settings_defaults_and_name_their_own_flag() -> None:
    assert FidOptions().fid.batch == FidSettings().batch
    assert FidOptions(fid=FidSettings(mode="legacy_pytorch")).validated().fid.mode == (
        "legacy-pytorch"
    )
    with pytest.raises(InputError, match=r"^--batch-size 0 ") as err:
        FidOptions(fid=FidSettings(batch=0)).validated()
    assert "--fid-batch" not in str(err.value)


def test_optimize_fid_defaults_by_kind_and_an_explicit_n_is_kept() -> None:
    from accelkit.options import FidSettings
    from accelkit.pipelines.options import (
        OPTIMIZE_DIFFUSION_FID_N,
        OPTIMIZE_FID_N,
        OptimizeOptions,
    )

    opts = OptimizeOptions().validated()  # 0: not given; the kind decides
    assert opts.fid.n == 0
    assert opts.for_kind(diffusion=False).fid.n == OPTIMIZE_FID_N == 500
    assert opts.for_kind(diffusion=True).fid.n == OPTIMIZE_DIFFUSION_FID_N == 200
    given = OptimizeOptions(fid=FidSettings(n=64)).validated()
    assert given.for_kind(diffusion=True).fid.n == given.for_kind(diffusion=False).fid.n == 64
