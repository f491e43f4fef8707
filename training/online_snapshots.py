"""The online learners' state in MLflow: snapshot what the workers learned, restore it later.

What the running API learns online lives in its :class:`PolicyStateStore`:
each worker's blob under the model version's policy state key (the linear
Thompson sampling sums, or ε-greedy's river recalibrators), and each worker's
holdout baseline (river means) under :data:`BASELINE_STATE_KEY`. A snapshot
copies every one of those blobs, byte for byte, into one run of the MLflow
experiment ``nudge-online-state``, tagged with the model version, the policy
and how much it had learned; a restore writes them back in place of what is
stored, so a (re)started API continues from exactly that state.

The store is the live copy (workers publish to it every second); snapshots
are the restore points: after a lost or damaged store, or to go back to a
state known to be good.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.tracking import MlflowClient

from decisioning import (
    BASELINE_STATE_KEY,
    EpsilonGreedy,
    HoldoutBaseline,
    LinearThompson,
    Policy,
    PolicyStateStore,
)
from features import InvalidRequest, NotFound

__all__ = [
    "EXPERIMENT",
    "OnlineState",
    "OnlineStateSettings",
    "load_online_state",
    "log_online_state",
    "restore_policy_state",
    "snapshot_policy_state",
]

EXPERIMENT = "nudge-online-state"
"""The MLflow experiment that holds the snapshots, one run each."""
_FOLDER = "online_state"
_MANIFEST = "manifest.json"
_FORMAT = 1


class OnlineStateSettings(Protocol):
    """What these functions read of the settings (``serving.settings.Settings`` has it)."""

    @property
    def mlflow_tracking_uri(self) -> str: ...

    @property
    def mlflow_artifact_root(self) -> Path: ...


@dataclass(frozen=True)
class OnlineState:
    """Every worker's blob under one policy state key, and every worker's holdout baseline.

    >>> from decisioning import SQLitePolicyStateStore
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = SQLitePolicyStateStore(Path(tmp) / "state.db")
    ...     store.publish("policy/v1", "w1", b"learned")
    ...     state = OnlineState.read(
    ...         store, state_key="policy/v1", model_name="m", model_version="1"
    ...     )
    ...     store.publish("policy/v1", "w2", b"later")
    ...     state.write(store)
    ...     print(store.collect("policy/v1"))
    ...     store.close()
    {'w1': b'learned', 'w2': b''}
    """

    state_key: str
    model_name: str
    model_version: str
    policy: Mapping[str, bytes]
    baseline: Mapping[str, bytes]

    @classmethod
    def read(
        cls, store: PolicyStateStore, *, state_key: str, model_name: str, model_version: str
    ) -> OnlineState:
        """What ``store`` holds now for ``state_key`` and for the holdout baseline."""
        return cls(
            state_key,
            model_name,
            model_version,
            dict(store.collect(state_key)),
            dict(store.collect(BASELINE_STATE_KEY)),
        )

    def write(self, store: PolicyStateStore) -> None:
        """Make ``store`` hold exactly this state under its two keys.

        A worker the snapshot did not know (one that published later) gets an
        empty blob, which every reader counts as nothing learned: the store's
        protocol has no delete, and no worker's row is ever written by another.
        """
        for key, blobs in ((self.state_key, self.policy), (BASELINE_STATE_KEY, self.baseline)):
            for worker in store.collect(key):
                if worker not in blobs:
                    store.publish(key, worker, b"")
            for worker, blob in blobs.items():
                store.publish(key, worker, blob)

    @property
    def digest(self) -> str:
        """A SHA-256 of the state's content: equal digests, equal states."""
        sha = hashlib.sha256(self.state_key.encode())
        for part in (self.policy, self.baseline):
            for worker, blob in sorted(part.items()):
                sha.update(b"\0" + worker.encode() + b"\0" + hashlib.sha256(blob).digest())
            sha.update(b"\1")
        return sha.hexdigest()


def snapshot_policy_state(
    settings: OnlineStateSettings,
    store: PolicyStateStore,
    *,
    state_key: str,
    model_name: str,
    model_version: str,
    policy: Policy,
) -> str:
    """Snapshot what ``store`` holds for ``state_key`` and the holdout baseline; the run id.

    ``policy`` is an untrained policy of the kind that wrote the state (the
    blobs are checked by having it take them in, and its count of updates
    becomes a tag).
    """
    state = OnlineState.read(
        store, state_key=state_key, model_name=model_name, model_version=model_version
    )
    return log_online_state(settings, state, policy=policy)


def log_online_state(settings: OnlineStateSettings, state: OnlineState, *, policy: Policy) -> str:
    """Log ``state`` as one run of experiment ``nudge-online-state``; the run id.

    Tags: ``nudge.model_name``, ``nudge.model_version``, ``nudge.state_key``,
    ``nudge.policy`` (its version string), ``nudge.updates_learned`` (every
    decision's first reward and each correction after it, over all workers),
    ``nudge.workers`` and ``nudge.digest``. Artifacts: ``online_state/`` with a
    manifest and one file per blob.
    """
    learned = policy.clone()
    learned.absorb([blob for blob in state.policy.values() if blob])
    HoldoutBaseline().absorb(list(state.baseline.values()))  # checks them, naming a bad one
    client = _client(settings)
    experiment_id = _experiment_id(client, settings.mlflow_artifact_root)
    updates = _updates(learned)
    run = client.create_run(
        experiment_id,
        run_name=f"{state.model_name} v{state.model_version} +{updates}",
        tags={
            "nudge.model_name": state.model_name,
            "nudge.model_version": state.model_version,
            "nudge.state_key": state.state_key,
            "nudge.policy": learned.version,
            "nudge.updates_learned": str(updates),
            "nudge.workers": str(sum(1 for blob in state.policy.values() if blob)),
            "nudge.digest": state.digest,
        },
    )
    run_id = str(run.info.run_id)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _write_files(Path(tmp), state)
            client.log_artifacts(run_id, tmp, _FOLDER)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


def load_online_state(settings: OnlineStateSettings, run_id: str) -> OnlineState:
    """The state a snapshot run holds, each blob checked against its SHA-256.

    Raises ``NotFound`` naming ``run_id`` when there is no such run, and
    ``InvalidRequest`` when the run is not an online-state snapshot or its
    files do not match their checksums.
    """
    if not isinstance(run_id, str) or not run_id.strip():
        raise InvalidRequest("run_id", "must be a non-empty string", run_id)
    client = _client(settings)
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        missing = {ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), ErrorCode.Name(INVALID_PARAMETER_VALUE)}
        if error.error_code in missing:
            raise NotFound("online-state snapshot run", run_id) from None
        raise
    experiment = client.get_experiment(run.info.experiment_id)
    if experiment.name != EXPERIMENT:
        raise InvalidRequest(
            "run_id",
            f"must be a run of experiment {EXPERIMENT!r}, not of {experiment.name!r}",
            run_id,
        )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = Path(client.download_artifacts(run_id, _FOLDER, tmp))
        except (MlflowException, OSError) as error:
            raise InvalidRequest(
                "run_id", f"must be a snapshot whose files are readable ({error})", run_id
            ) from error
        return _read_files(folder, run_id)


def restore_policy_state(
    settings: OnlineStateSettings, store: PolicyStateStore, run_id: str
) -> OnlineState:
    """Write the snapshot ``run_id`` back into ``store``, in place of what it holds; the state.

    Restore with the API stopped, then start it: a running worker would
    publish what it holds in memory over its own row at its next sync.
    """
    state = load_online_state(settings, run_id)
    state.write(store)
    return state


def _updates(policy: Policy) -> int:
    if isinstance(policy, LinearThompson):
        return policy.n_updates_
    if isinstance(policy, EpsilonGreedy):
        return policy.recalibrator_.total_updates
    return 0


def _client(settings: OnlineStateSettings) -> MlflowClient:
    uri = settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(client: MlflowClient, artifact_root: Path) -> str:
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(
            client.create_experiment(
                EXPERIMENT, artifact_location=Path(artifact_root).resolve().as_uri()
            )
        )
    except MlflowException as error:
        # Another process created it between our look-up and create.
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
        created = client.get_experiment_by_name(EXPERIMENT)
        if created is None:
            raise
        return str(created.experiment_id)


def _write_files(folder: Path, state: OnlineState) -> None:
    # Files are named by position: worker ids are whatever a deployment chose.
    entries: dict[str, list[dict[str, str]]] = {}
    for part, blobs in (("policy", state.policy), ("baseline", state.baseline)):
        entries[part] = []
        for i, (worker, blob) in enumerate(sorted(blobs.items())):
            name = f"{part}-{i}.bin"
            (folder / name).write_bytes(blob)
            entries[part].append(
                {"worker": worker, "file": name, "sha256": hashlib.sha256(blob).hexdigest()}
            )
    manifest = {
        "format": _FORMAT,
        "state_key": state.state_key,
        "baseline_key": BASELINE_STATE_KEY,
        "model_name": state.model_name,
        "model_version": state.model_version,
        **entries,
    }
    (folder / _MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def _read_files(folder: Path, run_id: str) -> OnlineState:
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
        if manifest["format"] != _FORMAT:
            raise ValueError(f"format {manifest['format']!r}")
        parts: dict[str, dict[str, bytes]] = {}
        for part in ("policy", "baseline"):
            parts[part] = {}
            for entry in manifest[part]:
                blob = (folder / Path(entry["file"]).name).read_bytes()
                if hashlib.sha256(blob).hexdigest() != entry["sha256"]:
                    raise ValueError(f"{entry['file']} does not match its SHA-256")
                parts[part][str(entry["worker"])] = blob
        return OnlineState(
            str(manifest["state_key"]),
            str(manifest["model_name"]),
            str(manifest["model_version"]),
            parts["policy"],
            parts["baseline"],
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidRequest(
            "run_id", f"must be an intact online-state snapshot ({error})", run_id
        ) from error
