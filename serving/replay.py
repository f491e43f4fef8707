"""Replay logged, randomised decisions through the live API (Li et al., 2011).

Each held-out customer is sent to ``POST /v1/decide`` in time order, offered
both e-mails. When the decision matches the arm the customer really received
(mens, womens, or no send for no_email), a visit is posted back as an outcome
and a non-visit earns zero when the attribution window closes; only matches
count toward the policy's value. Because the logged arms were assigned
uniformly at random, the matched rewards are an unbiased sample of the
policy's own value. A decision that does not match is cancelled: what would
have happened is unknown, so the policy must not learn from it.

The three groups are counted apart: the policy's value is that of the
decisions it made itself; the uniform exploration slice and the holdout are
reported beside it.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
from tqdm import tqdm

from features import Unavailable
from serving.json_client import JsonClient
from training import PolicyValue, mean_with_ci

__all__ = ["ReplayResult", "replay"]

REQUIRED_COLUMNS = ("customer_id", "event_timestamp", "arm", "visit")


ARM_BY_ACTION = {
    "mens/email/now": "mens_email",
    "womens/email/now": "womens_email",
    "no_send": "no_email",
}
CANDIDATES = [{"message": "mens"}, {"message": "womens"}]


@dataclass
class ReplayResult:
    decisions: int
    rewards: list[float] = field(default_factory=list)
    """Matched rewards of the learning policy's own decisions."""
    explore_rewards: list[float] = field(default_factory=list)
    """Matched rewards of the uniform exploration slice."""
    holdout_rewards: list[float] = field(default_factory=list)
    chosen: Counter[str] = field(default_factory=Counter)
    groups: Counter[str] = field(default_factory=Counter)
    explored: int = 0

    @property
    def matched(self) -> int:
        return len(self.rewards) + len(self.explore_rewards) + len(self.holdout_rewards)

    def value(self) -> PolicyValue:
        return mean_with_ci(self.rewards)


def _post(client: JsonClient, path: str, body: dict[str, object]) -> dict[str, object]:
    response = client.post(path, body)
    if response.status >= 400:
        raise Unavailable(f"{path} answered {response.status}: {response.text[:300]}")
    payload: dict[str, object] = response.json()
    return payload


def replay(client: JsonClient, logged: pd.DataFrame, *, progress: bool = True) -> ReplayResult:
    """Send ``logged`` rows (customer_id, event_timestamp, arm, visit) through the API."""
    missing = [c for c in REQUIRED_COLUMNS if c not in logged.columns]
    if missing:
        raise ValueError(f"replay needs columns {missing}")
    ordered = logged.sort_values(["event_timestamp", "customer_id"], kind="stable")
    result = ReplayResult(decisions=len(ordered))
    rows = zip(ordered["customer_id"], ordered["arm"], ordered["visit"], strict=True)
    # On a terminal the bar redraws twice a second; in a log file, every 10 s.
    interval = 0.5 if sys.stderr.isatty() else 10.0
    bar = tqdm(
        rows,
        total=len(ordered),
        desc="      replay",
        unit="decision",
        disable=not progress,
        mininterval=interval,
    )
    for customer_id, logged_arm, visit in bar:
        decision = _post(
            client,
            "/v1/decide",
            {
                "customer_id": str(customer_id),
                "journey": "hillstrom",
                "step": "campaign",
                "candidates": CANDIDATES,
                "idempotency_key": f"hillstrom-replay-{customer_id}",
            },
        )
        action = decision["action"]
        assert isinstance(action, dict)
        arm = ARM_BY_ACTION[str(action["key"])]
        group = str(decision["group"])
        result.chosen[arm] += 1
        result.groups[group] += 1
        result.explored += bool(decision["explored"])
        decision_id = str(decision["decision_id"])
        if arm != logged_arm:
            _post(client, f"/v1/decisions/{decision_id}/cancel", {})
            continue
        if visit:
            _post(
                client,
                "/v1/outcomes",
                {
                    "decision_id": decision_id,
                    "event": "visit",
                    "occurred_at": datetime.now(UTC).isoformat(),
                },
            )
        by_group = {"holdout": result.holdout_rewards, "explore": result.explore_rewards}
        by_group.get(group, result.rewards).append(float(visit))
    return result
