"""A new champion goes into service without a restart: watch the registry alias, load, swap.

Each API worker process runs its own watcher, so in scale mode every worker
swaps on its own, within one interval of the others. Meanwhile an outcome
teaches the policy of the model version its decision was made with, in any
worker that has served that version (see :meth:`DecisionEngine.swap_model`):
nothing is misfiled across versions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from serving.metrics import ApiMetrics
from serving.settings import Settings
from serving.wiring import Runtime, policy_state_key
from training import ModelRegistry

__all__ = ["MAX_RETRY_PAUSE_S", "ModelWatcher"]

_log = logging.getLogger("nudge.api")
MAX_RETRY_PAUSE_S = 600.0
"""The longest wait before trying a version that failed to load again."""


class ModelWatcher:
    """Keeps a running engine on the version that ``model_name@model_alias`` points at.

    :meth:`check` asks the registry which version the alias names (one small
    query); when it is not the version in service, it loads that version and
    swaps it into the engine while requests go on. A load or swap that fails is
    logged and counted (``nudge_model_reloads_total{result="failed"}``), the
    model in service keeps serving, and that version is tried again after a
    pause that doubles with each failure (from the interval up to
    :data:`MAX_RETRY_PAUSE_S`): a broken version costs a load now and then, not
    one every few seconds.
    """

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        metrics: ApiMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.metrics = metrics
        self._clock = clock
        self._registry: ModelRegistry | None = None
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}

    def check(self) -> str | None:
        """Swap in the version the alias names, if it is new; the version swapped in, or None.

        Blocking (a registry query, and a load of a second or two): run it off
        the event loop.
        """
        version = self._aliased_version()
        serving = self.runtime.engine.model_version
        if version == serving:
            return None
        if self._clock() < self._retry_at.get(version, float("-inf")):
            return None
        name = self.settings.model_name
        try:
            loaded = self._loader().load(name, self.settings.model_alias)
            self.runtime.engine.swap_model(
                loaded.model,
                loaded.version,
                policy_state_key(self.settings, loaded.name, loaded.version),
            )
        except Exception:  # a broken version must never take the serving one down
            failures = self._failures[version] = self._failures.get(version, 0) + 1
            pause = min(self.settings.model_reload_interval * 2**failures, MAX_RETRY_PAUSE_S)
            self._retry_at[version] = self._clock() + pause
            self.metrics.model_reloads.labels(result="failed").inc()
            _log.exception(
                "could not put %s v%s (%s@%s) in service; v%s keeps serving, retry in %.0f s",
                name,
                version,
                name,
                self.settings.model_alias,
                serving,
                pause,
            )
            return None
        self._failures.pop(loaded.version, None)
        self._retry_at.pop(loaded.version, None)
        self.runtime.model_version = loaded.version
        self.metrics.set_gauges(self.metrics.model_info, {(loaded.name, loaded.version): 1.0})
        self.metrics.model_reloads.labels(result="swapped").inc()
        _log.info("%s v%s is in service (was v%s)", loaded.name, loaded.version, serving)
        return loaded.version

    async def run(self) -> None:
        """Check every ``settings.model_reload_interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.settings.model_reload_interval)
            try:
                await asyncio.to_thread(self.check)
            except Exception:  # the registry unreachable for a moment must not end the watch
                _log.exception("could not ask the model registry for the current version")

    def _aliased_version(self) -> str:
        # One registry query; nothing is loaded unless the answer is new.
        return self._loader().resolve(self.settings.model_name, self.settings.model_alias).version

    def _loader(self) -> ModelRegistry:
        if self._registry is None:
            self._registry = ModelRegistry(
                self.settings.mlflow_tracking_uri, self.settings.mlflow_artifact_root
            )
        return self._registry
