"""Decisioning: policies, the decision engine, and the decision and outcome log."""

from decisioning.types import ActionScore, Context, Decision, Outcome, Policy, Selection

__all__ = ["ActionScore", "Context", "Decision", "Outcome", "Policy", "Selection"]
