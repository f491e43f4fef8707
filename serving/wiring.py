"""Builds the backends that ``settings`` names and hands them to the decision engine.

This is the only place that knows which concrete stores, model registry and
policy a process runs with; everything below receives them through protocols.
Embedded mode keeps everything in SQLite files under ``state_dir``; scale mode
keeps the policy state and contact counters in Redis and the decision log in
Postgres, so several worker processes (or machines) share them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from decisioning import (
    DecisionEngine,
    DecisionLog,
    EpsilonGreedy,
    LinearThompson,
    Policy,
    PolicyStateStore,
    UniformRandom,
    load_decision_config,
)
from decisioning.contact_store import ContactStore
from features import FeatureRepo, Unavailable
from serving.settings import Settings
from training import ModelRegistry

__all__ = [
    "Runtime",
    "Stores",
    "build_policy",
    "build_runtime",
    "open_feature_repo",
    "open_stores",
    "policy_state_key",
    "worker_seed",
]


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


@dataclass
class Stores:
    log: DecisionLog
    state: PolicyStateStore
    contacts: ContactStore

    def close(self) -> None:
        self.contacts.close()
        self.state.close()
        self.log.close()


def build_policy(settings: Settings, seed: int | None = None) -> Policy:
    """The policy named by ``settings.policy``, with its parameters and seed."""
    seed = settings.seed if seed is None else seed
    if settings.policy == "uniform":
        return UniformRandom(seed=seed)
    if settings.policy == "epsilon_greedy":
        return EpsilonGreedy(
            epsilon=settings.epsilon, learning_rate=settings.learning_rate, seed=seed
        )
    return LinearThompson(
        prior_precision=settings.prior_precision, exploration=settings.ts_exploration, seed=seed
    )


def worker_seed(seed: int, worker_id: str) -> int:
    """A seed of this worker's own, so that several workers do not draw the same numbers.

    >>> worker_seed(0, "a") == worker_seed(0, "a"), worker_seed(0, "a") == worker_seed(0, "b")
    (True, False)
    """
    digest = hashlib.sha256(f"{seed}:{worker_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def policy_state_key(settings: Settings, model_name: str, model_version: str) -> str:
    """Where a policy's learned state is kept.

    What the policy learns is tied to one model's priors under one set of
    parameters, so each (policy, parameters, model version) keeps its own state: a
    new champion, or a different exploration rate, starts from the priors, and the
    earlier state stays stored for when it comes back.

    >>> policy_state_key(Settings(policy="epsilon_greedy", epsilon=0.2), "nudge-propensity", "3")
    'policy/epsilon_greedy(epsilon=0.2,learning_rate=0.05)/nudge-propensity/v3'
    """
    policy: str = settings.policy
    if policy == "epsilon_greedy":
        policy += f"(epsilon={settings.epsilon},learning_rate={settings.learning_rate})"
    elif policy == "linear_ts":
        policy += f"(prior_precision={settings.prior_precision})"
    return f"policy/{policy}/{model_name}/v{model_version}"


def open_stores(settings: Settings) -> Stores:
    """The decision log, policy state and contact stores of ``settings.storage``."""
    if settings.storage == "scale":
        import redis

        from decisioning.postgres_log import PostgresDecisionLog
        from decisioning.redis_contact import RedisContactStore
        from decisioning.redis_state import RedisPolicyStateStore

        client = redis.Redis.from_url(settings.redis_url)
        try:
            client.ping()
        except redis.RedisError as err:
            raise Unavailable(f"Redis at {settings.redis_url} is not reachable: {err}") from err
        return Stores(
            log=PostgresDecisionLog(settings.postgres_dsn, schema=settings.key_prefix),
            state=RedisPolicyStateStore(client, prefix=settings.key_prefix),
            contacts=RedisContactStore(client, prefix=settings.key_prefix),
        )
    from decisioning.sqlite_contact import SQLiteContactStore
    from decisioning.sqlite_log import SQLiteDecisionLog
    from decisioning.sqlite_state import SQLitePolicyStateStore

    return Stores(
        log=SQLiteDecisionLog(settings.decision_db),
        state=SQLitePolicyStateStore(settings.decision_db),
        contacts=SQLiteContactStore(settings.contact_db),
    )


def open_feature_repo(settings: Settings) -> FeatureRepo:
    """The Feast repo the settings name: embedded in ``state_dir``, or on Redis and Postgres."""
    if settings.feature_store == "scale":
        return FeatureRepo(
            settings.state_dir,
            storage="scale",
            redis_url=settings.redis_url,
            postgres_dsn=settings.postgres_dsn,
            key_prefix=settings.key_prefix,
        )
    return FeatureRepo(settings.state_dir)


def build_runtime(settings: Settings) -> Runtime:
    """Open the feature store, load the champion model, and restore the policy's state."""
    registry_db = settings.mlflow_db
    if not registry_db.exists():
        # Checked first: opening MLflow's store would create an empty one as a side effect.
        raise Unavailable(f"no model registry at {registry_db}")
    config = load_decision_config(settings.decision_config)
    loaded = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_root).load(
        settings.model_name, settings.model_alias
    )
    online = open_feature_repo(settings).online()
    stores = open_stores(settings)
    worker_id = uuid.uuid4().hex
    # One worker keeps the configured seed (reproducible runs); several each
    # derive their own, or they would all explore in lockstep.
    seed = settings.seed if settings.workers == 1 else worker_seed(settings.seed, worker_id)
    try:
        engine = DecisionEngine(
            config=config,
            features=online,
            model=loaded.model,
            model_version=loaded.version,
            policy=build_policy(settings, seed),
            log=stores.log,
            state=stores.state,
            contacts=stores.contacts,
            state_key=policy_state_key(settings, loaded.name, loaded.version),
            seed=seed,
            worker_id=worker_id,
        )
    except BaseException:
        stores.close()
        raise
    return Runtime(
        engine=engine,
        model_name=loaded.name,
        model_version=loaded.version,
        closers=[stores.close, engine.close],
    )
