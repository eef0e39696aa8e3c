"""The diffusion tests need diffusers; their fixtures (tiny pipeline folders of each layout)
live in ``tests/fixtures/diffusion.py``, registered for the whole suite by the root conftest."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers", reason="diffusion tests need diffusers (extra [diffusion])")
