"""Snapshots of the online learners' state: on a schedule in the API, and from the CLI.

The MLflow side is :mod:`training.online_snapshots`; this module finds the
store and the state key a server runs with, and keeps the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from features import NudgeError, Unavailable
from serving.metrics import ApiMetrics
from serving.settings import Settings
from serving.wiring import Runtime, build_policy, open_stores, policy_state_key
from training import ModelRegistry
from training.online_snapshots import (
    EXPERIMENT,
    OnlineState,
    log_online_state,
    restore_policy_state,
)

__all__ = [
    "LOCK_FILE",
    "Snapshot",
    "StateSnapshotter",
    "describe_restore",
    "restore_state",
    "snapshot_state",
]

_log = logging.getLogger("nudge.api")
LOCK_FILE = "online-state.lock"
"""In the state folder: the API process holding it is the one that takes the snapshots."""


@dataclass(frozen=True)
class Snapshot:
    """A snapshot logged to MLflow, what it holds, and its policy's version (with the count
    of updates learned)."""

    run_id: str
    state: OnlineState
    policy_version: str

    def describe(self) -> str:
        """One paragraph for the CLI.

        >>> state = OnlineState("policy/x/m/v3", "m", "3", {"w1": b"", "w2": b"x"}, {})
        >>> print(Snapshot("abc", state, "uniform-random").describe())
        Logged the online state of m v3 as run abc (experiment nudge-online-state):
          policy/x/m/v3: 1 worker, uniform-random
          holdout baseline: 0 workers
        Restore it with `nudge models restore abc`.
        """
        state = self.state
        return (
            f"Logged the online state of {state.model_name} v{state.model_version} as run "
            f"{self.run_id} (experiment {EXPERIMENT}):\n"
            f"  {state.state_key}: {_workers(state.policy)}, {self.policy_version}\n"
            f"  holdout baseline: {_workers(state.baseline)}\n"
            f"Restore it with `nudge models restore {self.run_id}`."
        )


def snapshot_state(settings: Settings) -> Snapshot:
    """Snapshot the state of the champion's policy (``nudge models snapshot``).

    The champion is ``settings.model_name@settings.model_alias``; the policy
    and its parameters are the settings', as for ``nudge serve``.
    """
    _check_registry(settings)
    registry = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
    version = registry.resolve(settings.model_name, settings.model_alias).version
    stores = open_stores(settings)
    try:
        state = OnlineState.read(
            stores.state,
            state_key=policy_state_key(settings, settings.model_name, version),
            model_name=settings.model_name,
            model_version=version,
        )
    finally:
        stores.close()
    policy = build_policy(settings)
    run_id = log_online_state(settings, state, policy=policy)
    policy.absorb([blob for blob in state.policy.values() if blob])
    return Snapshot(run_id, state, policy.version)


def restore_state(settings: Settings, run_id: str) -> OnlineState:
    """Write snapshot ``run_id`` back into the settings' store (``nudge models restore``)."""
    _check_registry(settings)
    stores = open_stores(settings)
    try:
        return restore_policy_state(settings, stores.state, run_id)
    finally:
        stores.close()


def describe_restore(settings: Settings, run_id: str, state: OnlineState) -> str:
    """What a restore wrote, and when the API will use it, for the CLI."""
    lines = [
        f"Restored run {run_id}: the online state of {state.model_name} v{state.model_version}",
        f"  {state.state_key}: {_workers(state.policy)}",
        f"  holdout baseline: {_workers(state.baseline)}",
        "Start (or restart) the API to continue from it.",
    ]
    try:
        registry = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
        serving = registry.resolve(settings.model_name, settings.model_alias).version
    except NudgeError:
        serving = None
    if state.model_name == settings.model_name and serving not in (None, state.model_version):
        lines.append(
            f"note: {settings.model_name}@{settings.model_alias} is v{serving}; this state is "
            f"used when v{state.model_version} is in service again (a rollback)."
        )
    return "\n".join(lines)


class StateSnapshotter:
    """Snapshots a running server's online state every ``settings.snapshot_interval`` seconds.

    One process per state folder takes them, the one holding
    ``state_dir/online-state.lock`` (every worker's learning is in the shared
    store anyway); it publishes its own learning first. A state unchanged since
    this process's last snapshot is not logged again, so an idle server adds
    no runs. Counted in ``nudge_online_state_snapshots_total`` by result.
    """

    def __init__(self, settings: Settings, runtime: Runtime, metrics: ApiMetrics) -> None:
        self.settings = settings
        self.runtime = runtime
        self.metrics = metrics
        self._last_digest: str | None = None
        self._lock_file: IO[bytes] | None = None
        self._running = threading.Lock()

    def run_once(self) -> str | None:
        """One scheduled snapshot; the run id, or None when not this process's turn or unchanged."""
        with self._running:
            if not self._takes_snapshots():
                return None
            engine = self.runtime.engine
            engine.sync()
            state = OnlineState.read(
                engine.state,
                state_key=engine.state_key,
                model_name=self.runtime.model_name,
                model_version=engine.model_version,
            )
            if state.digest == self._last_digest:
                self.metrics.state_snapshots.labels(result="unchanged").inc()
                return None
            run_id = log_online_state(self.settings, state, policy=engine.policy.clone())
            self._last_digest = state.digest
            self.metrics.state_snapshots.labels(result="logged").inc()
            return run_id

    async def run(self) -> None:
        """Snapshot every ``settings.snapshot_interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.settings.snapshot_interval)
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:  # MLflow unreachable for a while must not end the schedule
                self.metrics.state_snapshots.labels(result="failed").inc()
                _log.exception("snapshotting the online state to MLflow failed; will retry")

    def close(self) -> None:
        """Let another worker take over the snapshots; waits for one in progress."""
        with self._running:
            if self._lock_file is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None

    def _takes_snapshots(self) -> bool:
        if self._lock_file is not None:
            return True
        handle = (self.settings.state_dir / LOCK_FILE).open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        return True


def _workers(blobs: Mapping[str, bytes]) -> str:
    count = sum(1 for blob in blobs.values() if blob)
    return f"{count} worker" + ("" if count == 1 else "s")


def _check_registry(settings: Settings) -> None:
    # Opening MLflow's store would create an empty one as a side effect.
    if not settings.mlflow_db.exists():
        raise Unavailable(f"no model registry at {settings.mlflow_db}")
