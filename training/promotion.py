"""Evidence-gated promotion of a family's challenger to champion, rollback, and their records.

Both models are judged on the same logs: the held-out customers of the
randomised experiment (:func:`training.lifecycle.holdout_mask`), whose arms
were drawn with known probabilities (1/3 each in Hillstrom). Each model's
greedy policy (the arm of highest predicted outcome for a propensity model;
the treatment of highest predicted uplift, or the control when none is above
0, for an uplift model) gets a doubly robust value estimate, whose reward
model is neither candidate: a T-learner cross-fitted on the logs themselves,
so no row's correction uses a model that saw it. Intervals are percentile
bootstrap intervals over the customers, the same resamples for both models
and their difference.

The challenger replaces the champion only when its lower bound beats the
champion's estimate by ``margin``. Every promotion, refusal and rollback is a
run in the ``nudge-promotions`` experiment (parameters, metrics, the evidence
as ``evidence.json``) and tags on the model versions; :func:`rollback` finds
the previous champion in those records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features import Conflict, InvalidRequest
from models import TLearner, UpliftModel
from models.uplift import Outcome
from training.lifecycle import (
    CHALLENGER,
    CHAMPION,
    CONTROL_ARM,
    SPLIT_RULE,
    LifecycleSettings,
    TrainingSet,
    build_training_set,
    family_name,
    registry_for,
    split_training_set,
)
from training.mlflow_model import PropensityModel
from training.policy_value import (
    PolicyValue,
    bootstrap_intervals,
    doubly_robust_value,
    ips_value,
    mean_with_ci,
)
from training.registry import LoadedModel, ModelRegistry, ModelVersionInfo
from training.uplift_comparison import greedy_arms

__all__ = [
    "PROMOTIONS_EXPERIMENT",
    "CandidateValue",
    "PromotionDecision",
    "PromotionEvidence",
    "PromotionRecord",
    "evaluate_candidates",
    "history",
    "promote",
    "rollback",
]

PROMOTIONS_EXPERIMENT = "nudge-promotions"
BOOTSTRAP_RESAMPLES = 1_000
REWARD_MODEL_FOLDS = 5
_BINARY_OUTCOMES = ("visit", "conversion")

Action = Literal["promote", "refuse", "rollback", "none"]


@dataclass(frozen=True)
class CandidateValue:
    """One model's greedy policy on the evaluation logs.

    ``dr`` is the doubly robust value with its bootstrap 95 % interval, ``ips``
    the inverse propensity estimate with its normal interval, ``arms`` the share
    of customers the policy gives each arm. ``same_split`` says whether the
    model was trained with the lifecycle's holdout, so never on these customers.
    """

    role: str
    version: str
    run_id: str
    learner: str
    dr: PolicyValue
    ips: PolicyValue
    arms: dict[str, float]
    same_split: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "role": self.role,
            "version": self.version,
            "run_id": self.run_id,
            "learner": self.learner,
            "dr": self.dr.to_dict(),
            "ips": self.ips.to_dict(),
            "arms": self.arms,
            "same_split": self.same_split,
        }


@dataclass(frozen=True)
class PromotionEvidence:
    """Champion and challenger on the same logs, with what the logging policy itself got.

    ``difference`` is challenger minus champion (paired bootstrap interval).
    """

    family: str
    outcome: str
    champion: CandidateValue
    challenger: CandidateValue
    difference: PolicyValue
    logged: PolicyValue
    n: int
    snapshot_id: str
    reward_model: str
    resamples: int
    warnings: tuple[str, ...] = ()

    def beats(self, margin: float) -> bool:
        """The rule: the challenger's DR lower bound above the champion's DR estimate + margin."""
        low = self.challenger.dr.ci95[0]
        return math.isfinite(low) and low > self.champion.dr.mean + margin

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "family": self.family,
            "outcome": self.outcome,
            "champion": self.champion.to_dict(),
            "challenger": self.challenger.to_dict(),
            "difference": self.difference.to_dict(),
            "logged": self.logged.to_dict(),
            "n": self.n,
            "snapshot_id": self.snapshot_id,
            "reward_model": self.reward_model,
            "resamples": self.resamples,
            "warnings": list(self.warnings),
        }

    def metrics(self) -> dict[str, float]:
        """The numbers, flat, as a record's MLflow metrics."""
        values: dict[str, float] = {"n": float(self.n)}
        for name, value in (
            ("champion_dr", self.champion.dr),
            ("challenger_dr", self.challenger.dr),
            ("difference_dr", self.difference),
            ("champion_ips", self.champion.ips),
            ("challenger_ips", self.challenger.ips),
            ("logged", self.logged),
        ):
            values[name] = value.mean
            values[f"{name}_low"], values[f"{name}_high"] = value.ci95
        return {key: value for key, value in values.items() if math.isfinite(value)}


@dataclass(frozen=True)
class PromotionDecision:
    """What :func:`promote` or :func:`rollback` decided, whether it was applied, and why.

    ``action`` is ``promote``, ``refuse``, ``rollback`` or ``none`` (nothing to
    decide: the challenger already is the champion). ``record_run_id`` is the
    record in ``nudge-promotions`` (None for a dry run or ``none``).
    """

    family: str
    action: Action
    applied: bool
    champion_before: str | None
    champion_after: str | None
    challenger: str | None
    reason: str
    margin: float | None = None
    forced: bool = False
    evidence: PromotionEvidence | None = None
    record_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "family": self.family,
            "action": self.action,
            "applied": self.applied,
            "champion_before": self.champion_before,
            "champion_after": self.champion_after,
            "challenger": self.challenger,
            "reason": self.reason,
            "margin": self.margin,
            "forced": self.forced,
            "evidence": None if self.evidence is None else self.evidence.to_dict(),
            "record_run_id": self.record_run_id,
        }


@dataclass(frozen=True)
class PromotionRecord:
    """One recorded decision, read back from ``nudge-promotions``."""

    run_id: str
    at: datetime
    family: str
    action: str
    applied: bool
    champion_before: str | None
    champion_after: str | None
    challenger: str | None
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)


def evaluate_candidates(
    settings: LifecycleSettings,
    family: str,
    *,
    training_set: TrainingSet | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> PromotionEvidence:
    """Champion and challenger of ``family`` on the same held-out logs, by DR and IPS.

    ``training_set`` reuses a set already built (default: the current one,
    :func:`~training.lifecycle.build_training_set`). The reward is the
    challenger's outcome (``visit`` for propensity models); both models must
    predict the same one. Raises ``NotFound`` when either alias is missing.
    """
    family = family_name(family)
    registry = registry_for(settings)
    champion_info = registry.resolve(family, CHAMPION)
    challenger_info = registry.resolve(family, CHALLENGER)
    outcome = challenger_info.tags.get("nudge.outcome", "visit")
    champion_outcome = champion_info.tags.get("nudge.outcome", "visit")
    if outcome != champion_outcome:
        raise InvalidRequest(
            "challenger", f"must predict the champion's outcome {champion_outcome!r}", outcome
        )
    champion = registry.load_version(family, champion_info.version)
    challenger = registry.load_version(family, challenger_info.version)
    if training_set is None:
        training_set = build_training_set(settings)
    _, logs = split_training_set(training_set)
    if len(logs) < 2:
        raise InvalidRequest("training_set", "must hold at least 2 held-out customers", len(logs))

    X = logs[list(training_set.features)]  # noqa: N806 - scikit-learn's name
    arms = logs["arm"].astype(str).to_numpy()
    rewards = logs[outcome].to_numpy(dtype=np.float64)
    propensities = logs["propensity"].to_numpy(dtype=np.float64)
    q = _reward_model(X, arms, rewards, outcome, seed=settings.seed)
    logged_q = _pick(q, arms)

    terms: dict[str, NDArray[np.float64]] = {}
    point: dict[str, tuple[PolicyValue, PolicyValue, dict[str, float]]] = {}
    for role, loaded in (("champion", champion), ("challenger", challenger)):
        target = _greedy(loaded, X)
        unknown = sorted(set(target) - set(q.columns))
        if unknown:
            raise InvalidRequest(f"{role}", "must choose among the logged arms", unknown)
        match = (target == arms).astype(np.float64)
        target_q = _pick(q, target)
        terms[role] = target_q + match / propensities * (rewards - logged_q)
        dr = doubly_robust_value(rewards, propensities, match, logged_q, target_q)
        ips = ips_value(arms, rewards, propensities, target)
        shares = pd.Series(target).value_counts(normalize=True).sort_index()
        point[role] = (dr, ips, {str(arm): float(share) for arm, share in shares.items()})

    columns = np.column_stack(
        [terms["champion"], terms["challenger"], terms["challenger"] - terms["champion"]]
    )
    intervals = bootstrap_intervals(columns, resamples=resamples, seed=settings.seed)
    n = len(logs)
    difference = float(columns[:, 2].mean())

    def candidate(role: str, info: ModelVersionInfo, k: int) -> CandidateValue:
        dr, ips, shares = point[role]
        return CandidateValue(
            role=role,
            version=info.version,
            run_id=info.run_id,
            learner=info.tags.get("nudge.learner", info.tags.get("nudge.model", "unknown")),
            dr=PolicyValue(mean=dr.mean, ci95=intervals[k], n=n),
            ips=ips,
            arms=shares,
            same_split=info.tags.get("nudge.split") == SPLIT_RULE,
        )

    warnings = []
    if champion_info.tags.get("nudge.split") != SPLIT_RULE:
        warnings.append(
            f"champion v{champion_info.version} was not trained with the lifecycle's holdout: "
            "it may have seen some of these customers, which flatters its estimate"
        )
    return PromotionEvidence(
        family=family,
        outcome=outcome,
        champion=candidate("champion", champion_info, 0),
        challenger=candidate("challenger", challenger_info, 1),
        difference=PolicyValue(mean=difference, ci95=intervals[2], n=n),
        logged=mean_with_ci(rewards),
        n=n,
        snapshot_id=training_set.snapshot_id,
        reward_model=(
            f"TLearner per arm, {REWARD_MODEL_FOLDS}-fold cross-fitted on the evaluation logs"
        ),
        resamples=resamples,
        warnings=tuple(warnings),
    )


def promote(
    settings: LifecycleSettings,
    family: str,
    *,
    margin: float = 0.0,
    force: bool = False,
    dry_run: bool = False,
    training_set: TrainingSet | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> PromotionDecision:
    """Move ``family@challenger`` to champion if the evidence says so, and record the decision.

    The rule: the challenger's DR lower bound must exceed the champion's DR
    estimate plus ``margin`` (in units of the outcome: visits per customer, or
    spend). ``force`` promotes whatever the evidence (it is still recorded);
    ``dry_run`` decides and changes nothing, records nothing. A challenger
    logged without a signature, or not trained with the lifecycle's holdout,
    is refused: the first with an ``InvalidRequest``, after recording it.
    """
    family = family_name(family)
    if isinstance(margin, bool) or not isinstance(margin, int | float):
        raise InvalidRequest("margin", "must be a number >= 0", margin)
    if not math.isfinite(margin) or margin < 0:
        raise InvalidRequest("margin", "must be a number >= 0", margin)
    margin = float(margin)
    registry = registry_for(settings)
    champion = registry.resolve(family, CHAMPION)
    challenger = registry.resolve(family, CHALLENGER)
    if champion.version == challenger.version:
        return PromotionDecision(
            family=family,
            action="none",
            applied=False,
            champion_before=champion.version,
            champion_after=champion.version,
            challenger=challenger.version,
            reason=f"challenger v{challenger.version} already is the champion; train a new one",
            margin=margin,
        )

    if registry.signature(family, challenger.version) is None:
        reason = f"challenger v{challenger.version} was logged without a model signature"
        if not dry_run:
            refusal = _decision(family, "refuse", champion, challenger, reason, margin, force)
            _record(registry, refusal, champion, challenger)
        raise InvalidRequest(
            "challenger",
            "must have a model signature to be promoted (log it with "
            "training.lifecycle.log_challenger)",
            f"{family} v{challenger.version}",
        )

    evidence = evaluate_candidates(settings, family, training_set=training_set, resamples=resamples)
    low = evidence.challenger.dr.ci95[0]
    bar = evidence.champion.dr.mean + margin
    comparison = (
        f"challenger v{challenger.version} DR lower bound {low:.4f} "
        f"{'>' if evidence.beats(margin) else '<='} champion v{champion.version} "
        f"DR {evidence.champion.dr.mean:.4f} + margin {margin:g} = {bar:.4f}"
    )
    earned = evidence.challenger.same_split and evidence.beats(margin)
    action: Action = "promote" if earned or force else "refuse"
    if not evidence.challenger.same_split:
        reason = (
            f"challenger v{challenger.version} was not trained with the lifecycle's holdout, "
            "so it may have seen the customers it is judged on; retrain it with `nudge train`"
        )
    else:
        reason = comparison
    if not earned and force:
        reason = f"forced: {reason}"
    decision = _decision(
        family, action, champion, challenger, reason, margin, force, evidence=evidence
    )
    if dry_run:
        return replace(decision, applied=False, champion_after=champion.version)
    return _record(registry, decision, champion, challenger)


def rollback(settings: LifecycleSettings, family: str) -> PromotionDecision:
    """Point ``family@champion`` back at the champion before the current one, per the records.

    Promotions push the champion they replaced and rollbacks pop it, so
    rolling back twice after two promotions returns to the first champion.
    Raises ``Conflict`` when the records hold no earlier champion.
    """
    family = family_name(family)
    registry = registry_for(settings)
    current = registry.resolve(family, CHAMPION)
    target = _previous_champion(history(settings, family))
    if target is None:
        raise Conflict(f"no earlier champion of {family} in the promotion records to roll back to")
    if target == current.version:
        raise Conflict(
            f"the earlier champion of {family} in the records is v{target}, "
            "which already is the champion"
        )
    previous = registry.version(family, target)
    decision = PromotionDecision(
        family=family,
        action="rollback",
        applied=True,
        champion_before=current.version,
        champion_after=previous.version,
        challenger=None,
        reason=(
            f"rolled back from v{current.version} to v{previous.version}, the champion before it"
        ),
    )
    return _record(registry, decision, current, previous)


def history(settings: LifecycleSettings, family: str) -> list[PromotionRecord]:
    """Every recorded promotion, refusal and rollback of ``family``, oldest first."""
    family = family_name(family)
    runs = registry_for(settings).runs(
        PROMOTIONS_EXPERIMENT,
        f"tags.`nudge.family` = '{family}' and attributes.status = 'FINISHED'",
    )
    records = []
    for run in runs:
        params = run.data.params
        records.append(
            PromotionRecord(
                run_id=run.info.run_id,
                at=datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC),
                family=family,
                action=params.get("action", ""),
                applied=params.get("applied") == "True",
                champion_before=_version_or_none(params.get("champion_before")),
                champion_after=_version_or_none(params.get("champion_after")),
                challenger=_version_or_none(params.get("challenger")),
                reason=run.data.tags.get("nudge.reason", ""),
                metrics=dict(run.data.metrics),
            )
        )
    return records


def _decision(
    family: str,
    action: Action,
    champion: ModelVersionInfo,
    challenger: ModelVersionInfo,
    reason: str,
    margin: float,
    force: bool,
    *,
    evidence: PromotionEvidence | None = None,
) -> PromotionDecision:
    promoted = action == "promote"
    return PromotionDecision(
        family=family,
        action=action,
        applied=promoted,
        champion_before=champion.version,
        champion_after=challenger.version if promoted else champion.version,
        challenger=challenger.version,
        reason=reason,
        margin=margin,
        forced=force,
        evidence=evidence,
    )


def _record(
    registry: ModelRegistry,
    decision: PromotionDecision,
    champion: ModelVersionInfo,
    other: ModelVersionInfo,
) -> PromotionDecision:
    """Log ``decision`` as a run, moving the alias inside it when it was applied; tag versions."""
    family = decision.family
    moves = decision.applied and decision.champion_after != decision.champion_before
    target = decision.champion_after

    def move_alias() -> None:
        if moves and target is not None:
            registry.set_alias(family, CHAMPION, target)

    at = datetime.now(UTC).isoformat(timespec="seconds")
    run_id = registry.log_run(
        PROMOTIONS_EXPERIMENT,
        params={
            "family": family,
            "action": decision.action,
            "applied": decision.applied,
            "champion_before": decision.champion_before or "none",
            "champion_after": decision.champion_after or "none",
            "challenger": decision.challenger or "none",
            "margin": "none" if decision.margin is None else decision.margin,
            "forced": decision.forced,
        },
        metrics=decision.evidence.metrics() if decision.evidence else None,
        tags={
            "nudge.family": family,
            "nudge.action": decision.action,
            "nudge.reason": decision.reason,
        },
        documents={"decision.json": decision.to_dict()},
        then=move_alias,
    )
    summary = {
        "nudge.last_decision": decision.action,
        "nudge.last_decision_run": run_id,
        "nudge.last_decision_at": at,
        "nudge.last_decision_reason": decision.reason[:4_000],
    }
    registry.tag_version(family, other.version, summary)
    if moves and decision.champion_before is not None:
        registry.tag_version(
            family,
            champion.version,
            {
                "nudge.replaced_by": other.version,
                "nudge.replaced_at": at,
                "nudge.replaced_run": run_id,
            },
        )
    return replace(decision, record_run_id=run_id)


def _previous_champion(records: list[PromotionRecord]) -> str | None:
    stack: list[str] = []
    for record in records:
        if not record.applied:
            continue
        if record.action == "promote" and record.champion_before is not None:
            stack.append(record.champion_before)
        elif record.action == "rollback" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _version_or_none(value: str | None) -> str | None:
    return None if value in (None, "", "none") else value


def _greedy(loaded: LoadedModel[PropensityModel | UpliftModel], X: pd.DataFrame) -> NDArray[Any]:  # noqa: N803
    if loaded.kind == "propensity":
        scores = cast(PropensityModel, loaded.model).predict_frame(X)
        chosen: NDArray[Any] = scores.idxmax(axis=1).astype(str).to_numpy()
        return chosen
    uplift = cast(UpliftModel, loaded.model).predict_uplift(X)
    greedy: NDArray[Any] = greedy_arms(uplift, CONTROL_ARM).astype(str).to_numpy()
    return greedy


def _reward_model(
    X: pd.DataFrame,  # noqa: N803 - scikit-learn's name
    arms: NDArray[Any],
    rewards: NDArray[np.float64],
    outcome: str,
    *,
    seed: int,
) -> pd.DataFrame:
    """q̂(x, a) for every row and arm, each row's from a model fitted on the other folds."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(arms), dtype=np.int64)
    # Dealt round-robin within each arm after a shuffle: every fold has every arm.
    for arm in np.unique(arms):
        rows = np.flatnonzero(arms == arm)
        folds[rng.permutation(rows)] = np.arange(rows.size) % REWARD_MODEL_FOLDS
    kind: Outcome = "binary" if outcome in _BINARY_OUTCOMES else "continuous"
    predictions: list[pd.DataFrame] = []
    for fold in range(REWARD_MODEL_FOLDS):
        held_out = folds == fold
        if not held_out.any():
            continue
        model = TLearner(control=CONTROL_ARM, outcome=kind, seed=seed)
        model.fit(X[~held_out], pd.Series(arms[~held_out]), rewards[~held_out])
        predictions.append(model.predict_outcomes(X[held_out]))
    return pd.concat(predictions).loc[X.index]


def _pick(q: pd.DataFrame, arms: NDArray[Any]) -> NDArray[np.float64]:
    columns = {arm: k for k, arm in enumerate(q.columns)}
    index = np.array([columns[arm] for arm in arms])
    values: NDArray[np.float64] = q.to_numpy(dtype=np.float64)[np.arange(len(arms)), index]
    return values
