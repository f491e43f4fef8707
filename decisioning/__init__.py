"""Decisioning: joint message × channel × send-time decisions under the contact policy.

The policies, the contact policy, the holdout, the decision engine, and the
protocols (with embedded SQLite and scale-mode Redis/Postgres backends) for the
decision log, the policy state and the contact store.
"""

from decisioning.baseline import HoldoutBaseline
from decisioning.config import DecisionConfig, load_decision_config
from decisioning.engine import (
    BASELINE_STATE_KEY,
    DecisionEngine,
    NoEligibleAction,
    OutcomeReceipt,
    SendCheck,
)
from decisioning.epsilon_greedy import EpsilonGreedy
from decisioning.linear_ts import LinearThompson
from decisioning.log import DecisionLog, PolicyStateStore
from decisioning.request import CandidateMessage, DecisionRequest, OutcomeReport
from decisioning.sqlite_log import SQLiteDecisionLog
from decisioning.sqlite_state import SQLitePolicyStateStore
from decisioning.types import (
    NO_SEND,
    ActionScore,
    Context,
    Decision,
    Exclusion,
    JointAction,
    Outcome,
    Policy,
    Selection,
)
from decisioning.uniform import UniformRandom

__all__ = [
    "BASELINE_STATE_KEY",
    "NO_SEND",
    "ActionScore",
    "CandidateMessage",
    "Context",
    "Decision",
    "DecisionConfig",
    "DecisionEngine",
    "DecisionLog",
    "DecisionRequest",
    "EpsilonGreedy",
    "Exclusion",
    "HoldoutBaseline",
    "JointAction",
    "LinearThompson",
    "NoEligibleAction",
    "Outcome",
    "OutcomeReceipt",
    "OutcomeReport",
    "Policy",
    "PolicyStateStore",
    "SQLiteDecisionLog",
    "SQLitePolicyStateStore",
    "Selection",
    "SendCheck",
    "UniformRandom",
    "load_decision_config",
]
