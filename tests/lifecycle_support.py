"""A small Nudge state to train on: a Hillstrom sample ingested and the Feast repo applied.

The demo's other steps (materialising, serving, replay) are not needed to train,
so this is the pipeline's first two steps only: about a second. Tests that move
aliases each work on their own copy (:func:`clone_state`), which carries an
already-migrated MLflow store (a fresh one takes seconds to create).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from features import EventLog, FeatureRepo, ingest_hillstrom
from serving.settings import Settings
from training import ModelRegistry

LIFECYCLE_SAMPLE = 12_000


def build_state(root: Path, *, sample: int = LIFECYCLE_SAMPLE, seed: int = 0) -> Settings:
    """Ingest ``sample`` Hillstrom customers under ``root/state``, apply the Feast repo."""
    settings = Settings(state_dir=root / "state", reports_dir=root / "reports", seed=seed)
    events = EventLog(settings.events_dir)
    ingest_hillstrom(events, sample=sample, seed=seed)
    FeatureRepo(settings.state_dir).apply(events.path("profiles"))
    ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
    return settings


def clone_state(settings: Settings, root: Path) -> Settings:
    """A copy of the state folder under ``root``: its own registry, the same data.

    The Feast registry still reads the original's profile file; re-apply the
    repo in the copy before changing that file.
    """
    target = root / "state"
    shutil.copytree(settings.state_dir, target)
    return settings.model_copy(update={"state_dir": target, "reports_dir": root / "reports"})


def shuffled(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """``values`` in a seeded random order: labels that carry no information."""
    return np.random.default_rng(seed).permutation(values)
