"""``nudge audiences sync`` and ``nudge audiences report``: the `type: ads` channel's audiences."""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from channels import (
    AudienceApiChannel,
    AudienceRules,
    AudienceSpec,
    AudienceStore,
    AudienceSync,
    RetryingChannel,
    load_channels_config,
    write_report,
)
from channels.ads import open_audience_store
from channels.config import AdsSettings, _secret
from features.errors import InvalidRequest, NotFound
from serving.journey_wiring import open_event_stream
from serving.settings import Settings
from serving.wiring import open_stores

__all__ = ["audiences_report", "sync_audiences"]


def _ads(settings: Settings, channel: str | None) -> tuple[str, AdsSettings]:
    config = load_channels_config(settings.channels_config)
    found = [
        (name, spec)
        for name, spec in config.channels.items()
        if isinstance(spec, AdsSettings) and channel in (None, name)
    ]
    if not found:
        raise NotFound("ads channel", f"{channel or 'type: ads'} in {settings.channels_config}")
    return found[0]


def _store(settings: Settings, ads: AdsSettings) -> AudienceStore:
    arguments = ads.arguments("ads", settings.state_dir, os.environ)
    return open_audience_store(arguments["path"], arguments["postgres"])


def sync_audiences(
    settings: Settings,
    *,
    channel: str | None = None,
    every: float = 60.0,
    once: bool = False,
    out: TextIO | None = None,
) -> int:
    """Sync every ``every`` seconds until stopped (or once); the failures of the last sync."""
    if isinstance(every, bool) or not isinstance(every, int | float) or not every >= 1:
        raise InvalidRequest("--every", "must be at least 1 second", every)
    name, ads = _ads(settings, channel)
    out = sys.stdout if out is None else out
    token = _secret(os.environ, ads.token_env, f"channels.{name}.token_env")
    store = _store(settings, ads)
    stream = open_event_stream(settings)
    stores = open_stores(settings)
    api = RetryingChannel(
        AudienceApiChannel(ads.url, token=token, name=name, timeout=ads.timeout),
        attempts=ads.retries + 1,
    )
    specs = [AudienceSpec(a, s.network_id, s.kind) for a, s in ads.audiences.items()]
    rules = AudienceRules(store, specs, buyer_window=timedelta(days=ads.buyer_window_days))
    sync = AudienceSync(
        store, rules, api, contacts=stores.contacts, stream=stream, batch_size=ads.batch_size
    )
    stop = threading.Event()
    if not once and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    failures = 0
    try:
        while True:
            result = sync.run()
            failures = result.failures
            parts = [
                f"{a} +{c.adds} -{c.removes} failed {c.failures} skipped {c.skipped}"
                for a, c in sorted(result.counts.items())
            ]
            print(f"sync {result.sync_id}: {result.events} events; " + "; ".join(parts), file=out)
            for batch in store.batches():
                if batch["status"] == "open" and batch["error"]:
                    # Why a batch did not go out, where the operator looks: it stays open
                    # and goes again, under the same id, on the next sync.
                    print(
                        f"  batch {batch.get('batch_id')} ({batch.get('audience')}): "
                        f"{batch.get('error')}",
                        file=sys.stderr,
                    )
            if once or stop.wait(every):
                return failures
    finally:
        api.close()
        store.close()
        stream.close()
        stores.close()


def audiences_report(
    settings: Settings, *, channel: str | None = None, out: TextIO | None = None
) -> Path:
    """Print the table and write ``audiences.json`` in the reports folder."""
    out = sys.stdout if out is None else out
    _, ads = _ads(settings, channel)
    store = _store(settings, ads)
    try:
        path, table = write_report(store, settings.reports_dir)
    finally:
        store.close()
    print(table, file=out)
    print(f"wrote {path}", file=out)
    return path
