"""Builds the backends that ``settings`` names and hands them to the decision engine.

This is the only place that knows which concrete store, model registry and
policy a process runs with; everything below receives them through protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from decisioning import (
    DecisionEngine,
    EpsilonGreedy,
    Policy,
    SQLiteDecisionLog,
    SQLitePolicyStateStore,
    UniformRandom,
)
from features import FeatureRepo, Unavailable
from serving.settings import Settings
from training import ModelRegistry

__all__ = ["Runtime", "build_policy", "build_runtime", "policy_state_key"]


@dataclass
class Runtime:
    """What one API process runs with, and how to release it."""

    engine: DecisionEngine
    model_name: str
    model_version: str
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def build_policy(settings: Settings) -> Policy:
    """The policy named by ``settings.policy``, with its parameters and seed."""
    if settings.policy == "uniform":
        return UniformRandom(seed=settings.seed)
    return EpsilonGreedy(
        epsilon=settings.epsilon, learning_rate=settings.learning_rate, seed=settings.seed
    )


def policy_state_key(settings: Settings, model_name: str, model_version: str) -> str:
    """Where a policy's learned state is kept.

    What the policy learns is a correction of one model's priors under one set of
    parameters, so each (policy, parameters, model version) keeps its own state: a
    new champion, or a different exploration rate, starts from the priors, and the
    earlier state stays stored for when it comes back.

    >>> policy_state_key(Settings(epsilon=0.2), "nudge-propensity", "3")
    'policy/epsilon_greedy(epsilon=0.2,learning_rate=0.05)/nudge-propensity/v3'
    """
    policy: str = settings.policy
    if policy == "epsilon_greedy":
        policy += f"(epsilon={settings.epsilon},learning_rate={settings.learning_rate})"
    return f"policy/{policy}/{model_name}/v{model_version}"


def build_runtime(settings: Settings) -> Runtime:
    """Open the feature store, load the champion model, and restore the policy's state."""
    registry_db = settings.mlflow_db
    if not registry_db.exists():
        # Checked first: opening MLflow's store would create an empty one as a side effect.
        raise Unavailable(f"no model registry at {registry_db}")
    loaded = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_root).load(
        settings.model_name, settings.model_alias
    )
    online = FeatureRepo(settings.state_dir).online()
    log = SQLiteDecisionLog(settings.decision_db)
    state = SQLitePolicyStateStore(settings.decision_db)
    engine = DecisionEngine(
        features=online,
        model=loaded.model,
        model_version=loaded.version,
        policy=build_policy(settings),
        log=log,
        state=state,
        state_key=policy_state_key(settings, loaded.name, loaded.version),
    )
    return Runtime(
        engine=engine,
        model_name=loaded.name,
        model_version=loaded.version,
        closers=[log.close, state.close],
    )
