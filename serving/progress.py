"""Numbered steps that say what they do and how long they took."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["Steps"]


class Steps:
    """Prints ``[i/n] name`` when a step starts and its time when it ends.

    >>> import io
    >>> out = io.StringIO()
    >>> steps = Steps(2, out=out)
    >>> with steps.step("ingest", "Loading the experiment"):
    ...     pass
    >>> out.getvalue().splitlines()[0]
    '[1/2] Loading the experiment'
    >>> list(steps.timings_s)
    ['ingest']
    """

    def __init__(self, total: int, out: TextIO | None = None) -> None:
        self.total = total
        self.out = out if out is not None else sys.stdout
        self.timings_s: dict[str, float] = {}

    @contextmanager
    def step(self, key: str, title: str) -> Iterator[None]:
        number = len(self.timings_s) + 1
        print(f"[{number}/{self.total}] {title}", file=self.out, flush=True)
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            elapsed = time.perf_counter() - started
            print(f"      {key} FAILED after {elapsed:.1f} s", file=self.out, flush=True)
            raise
        elapsed = time.perf_counter() - started
        self.timings_s[key] = round(elapsed, 3)
        print(f"      {key} done in {elapsed:.1f} s", file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(f"      {text}", file=self.out, flush=True)
