"""Decisioning: policies, the decision engine, and the decision and outcome log."""

from decisioning.engine import DEFAULT_REWARD_BY_EVENT, DecisionEngine, OutcomeReceipt
from decisioning.epsilon_greedy import EpsilonGreedy
from decisioning.log import DecisionLog, PolicyStateStore
from decisioning.sqlite_log import SQLiteDecisionLog
from decisioning.sqlite_state import SQLitePolicyStateStore
from decisioning.types import ActionScore, Context, Decision, Outcome, Policy, Selection
from decisioning.uniform import UniformRandom

__all__ = [
    "DEFAULT_REWARD_BY_EVENT",
    "ActionScore",
    "Context",
    "Decision",
    "DecisionEngine",
    "DecisionLog",
    "EpsilonGreedy",
    "Outcome",
    "OutcomeReceipt",
    "Policy",
    "PolicyStateStore",
    "SQLiteDecisionLog",
    "SQLitePolicyStateStore",
    "Selection",
    "UniformRandom",
]
