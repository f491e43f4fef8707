"""``nudge journeys validate`` and ``nudge journeys run``."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from decisioning import load_decision_config
from journeys import JourneyFileError, load_journey, validate_against
from journeys.runner import RunStats
from serving.settings import Settings

__all__ = ["journey_status", "run_journeys", "validate_journeys"]


def validate_journeys(
    settings: Settings, files: Sequence[Path] = (), out: TextIO | None = None
) -> int:
    """Check journey files (default: every file in ``journeys_dir``); the number of bad ones.

    Each problem is one line, ``file:line: field ...``: the file on its own,
    then its journey name (no file before it may use it), then against the
    decision configuration (its messages, channels and slots). A missing file or
    folder is a problem too. No journey file problem raises; a bad decision
    configuration does, being no journey file's fault. ``out`` is ``sys.stdout``
    as it is at the call, so that redirecting it works.
    """
    out = sys.stdout if out is None else out
    config = load_decision_config(settings.decision_config)
    if files:
        paths = list(dict.fromkeys(files))  # a file named twice is checked once
    else:
        folder = settings.journeys_dir
        if not folder.is_dir():
            print(f"{folder}: is not a folder (journeys_dir, --journeys-dir)", file=out)
            return 1
        paths = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not paths:
            print(f"{folder}: has no journey files (*.yaml, *.yml)", file=out)
            return 1
    bad = 0
    names: dict[str, str] = {}
    for path in paths:
        if not path.is_file():
            missing = "is a folder, not a journey file" if path.is_dir() else "no such file"
            bad += 1
            print(f"{path}: {missing}", file=out)
            continue
        try:
            journey = load_journey(path)
            first = names.setdefault(journey.name, journey.source)
            if first != journey.source:
                raise JourneyFileError(
                    journey.source,
                    journey.lines.get("journey"),
                    "journey",
                    f"must be unique; {first} already defines it",
                    journey.name,
                )
            validate_against(journey, config)
        except JourneyFileError as error:
            bad += 1
            print(f"{error}", file=out)
            continue
        except Exception as error:  # every file gets its verdict, whatever went wrong
            bad += 1
            print(f"{path}: {error}", file=out)
            continue
        print(f"{path}: ok ({journey.name}, {len(journey.steps)} steps)", file=out)
    return bad


def _line(stats: RunStats, counts: dict[str, int], sends: dict[str, int], elapsed: float) -> str:
    """This run's work, then what the store holds in all (every run so far)."""
    return (
        f"[{elapsed:7.1f} s] this run: events {stats.events:,}, entered {stats.entered:,}, "
        f"decided {stats.decided:,} ({stats.no_send:,} no send), sent {stats.sent:,}, "
        f"blocked {stats.blocked:,}, failed {stats.failed:,}, ended {stats.ended:,} | "
        f"in all: active {counts.get('active', 0):,}, scheduled {sends.get('scheduled', 0):,}, "
        f"sent {sends.get('sent', 0):,}, in doubt {sends.get('in_doubt', 0):,}"
    )


def run_journeys(
    settings: Settings,
    *,
    api_url: str | None = None,
    once: bool = False,
    until_idle: bool = False,
    report_every_s: float = 5.0,
    out: TextIO = sys.stdout,
) -> RunStats:
    """Run the journeys until stopped (Ctrl-C or SIGTERM), printing progress every few seconds.

    ``once`` runs a single pass; ``until_idle`` stops once nothing is left to do
    now (no new events, no timer due) — handy for scripts and the demo.
    """
    from serving.journey_wiring import build_journey_runtime

    started = time.perf_counter()
    runtime = build_journey_runtime(settings, api_url=api_url)
    runner = runtime.runner
    names = ", ".join(sorted(runtime.journeys))
    where = api_url or "this process"
    print(f"Journeys {names}: decisions from {where}; state in {settings.state_dir}", file=out)
    for key, n in sorted(runner.store.counts().items()):
        journey = key.removeprefix("active:")
        if key.startswith("active:") and journey not in runtime.journeys:
            print(
                f"note: {n:,} customers are in journey {journey!r}, which is not in "
                f"{settings.journeys_dir}; they wait, untouched, for a runner that has it",
                file=out,
            )
    total = RunStats()
    stop = threading.Event()
    last_report = time.perf_counter()

    def report(stats: RunStats) -> None:
        nonlocal last_report
        total.add(stats)
        if time.perf_counter() - last_report >= report_every_s:
            last_report = time.perf_counter()
            print(
                _line(
                    total, runner.store.counts(), runner.store.send_counts(), last_report - started
                ),
                file=out,
                flush=True,
            )
        if once or (until_idle and not stats.busy):
            stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        runner.run(stop, on_pass=report)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        print(
            _line(
                total,
                runner.store.counts(),
                runner.store.send_counts(),
                time.perf_counter() - started,
            ),
            file=out,
        )
        runtime.close()
    return total


def journey_status(
    settings: Settings, out: TextIO = sys.stdout
) -> dict[str, dict[str, dict[str, int]]]:
    """Customers per journey and status, and sends per channel and status, as a table."""
    from serving.journey_wiring import open_journey_store

    store = open_journey_store(settings)
    try:
        instances: dict[str, dict[str, int]] = {}
        for journey, status, n in store.db.query(
            "SELECT journey, status, COUNT(*) FROM journey_instances GROUP BY journey, status"
        ):
            instances.setdefault(journey, {})[status] = int(n)
        sends: dict[str, dict[str, int]] = {}
        for channel, status, n in store.db.query(
            "SELECT channel, status, COUNT(*) FROM journey_sends GROUP BY channel, status"
        ):
            sends.setdefault(channel, {})[status] = int(n)
        in_doubt = int(store.db.query("SELECT COALESCE(SUM(in_doubt), 0) FROM journey_sends")[0][0])
    finally:
        store.close()
    statuses = ("active", "completed", "goal", "exited")
    print(f"{'journey':<24}" + "".join(f"{s:>11}" for s in statuses), file=out)
    for journey in sorted(instances):
        row = instances[journey]
        print(f"{journey:<24}" + "".join(f"{row.get(s, 0):>11,}" for s in statuses), file=out)
    send_states = ("scheduled", "sent", "blocked", "failed", "cancelled", "retry")
    print(f"\n{'channel':<24}" + "".join(f"{s:>11}" for s in send_states), file=out)
    for channel in sorted(sends):
        row = sends[channel]
        print(f"{channel:<24}" + "".join(f"{row.get(s, 0):>11,}" for s in send_states), file=out)
    print(f"\nsends in doubt after a crash (sent again with the same id): {in_doubt}", file=out)
    return {
        "instances": {j: dict(r) for j, r in instances.items()},
        "sends": {c: dict(r) for c, r in sends.items()},
    }
