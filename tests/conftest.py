"""Fixtures shared by every test folder."""

from __future__ import annotations

import os

import pytest

# Set before LightGBM loads: its OpenMP threads otherwise spin on the 2-core CI box.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The whole pipeline on a 6,000-customer sample, run once per test session."""
    from demo_support import run_sample_demo

    run = run_sample_demo(tmp_path_factory.mktemp("demo"))
    print(f"\nsample demo took {run.elapsed_s:.1f} s")
    return run
