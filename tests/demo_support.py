"""One real pipeline run on a Hillstrom sample, shared by the end-to-end and API tests."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

from serving.api_process import free_port
from serving.pipeline import DemoResult, run_demo
from serving.settings import Settings

E2E_SAMPLE = 6_000


@dataclass
class DemoRun:
    settings: Settings
    result: DemoResult
    output: str
    elapsed_s: float


def run_sample_demo(root: Path) -> DemoRun:
    """The whole pipeline on a 6,000-customer sample, through a real API process."""
    settings = Settings(
        state_dir=root / "state", reports_dir=root / "reports", port=free_port(), seed=0
    )
    out = io.StringIO()
    started = time.perf_counter()
    result = run_demo(settings, sample=E2E_SAMPLE, out=out, progress=False)
    return DemoRun(settings, result, out.getvalue(), time.perf_counter() - started)
