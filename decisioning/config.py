"""What a deployment decides among and under which rules, read from one YAML file.

The catalogue (messages, channels and their costs), the send-time slots, the
contact rules, the holdout, the exploration slice and each journey's reward.
Every mistake in the file is reported with the path of the key that is wrong.

>>> config = load_decision_config(DEFAULT_CONFIG)
>>> sorted(config.channels), [slot.name for slot in config.slots][:3]
(['ads', 'email', 'push', 'sms'], ['now', '+1h', '+3h'])
>>> config.reward_for("cart_abandonment").attribution_window
datetime.timedelta(days=3)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from decisioning.contact_rules import ContactRules, FrequencyCap, QuietHours
from decisioning.slots import SlotSpec, load_zone, parse_slot
from features.errors import InvalidRequest

__all__ = [
    "DEFAULT_CONFIG",
    "ChannelSpec",
    "DecisionConfig",
    "MessageSpec",
    "RewardSpec",
    "load_decision_config",
    "parse_duration",
]

DEFAULT_CONFIG = Path(__file__).with_name("default_config.yaml")
MAX_ATTRIBUTION_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    cost: float = 0.0
    """What one send costs, in the unit of the reward (e.g. currency)."""


@dataclass(frozen=True)
class MessageSpec:
    name: str
    channels: tuple[str, ...]
    """The channels this message may go on."""
    model_arm: str | None = None
    """The offline model's action whose prediction is this message's prior, if any."""
    transactional: bool = False
    """Transactional messages are neither capped nor counted against caps."""


@dataclass(frozen=True)
class RewardSpec:
    """How a journey's outcomes turn into the reward the policy learns from.

    reward = Σ (conversion values inside the attribution window)
             − channel cost − Σ penalties [− the holdout's baseline, if uplift_aware]
    """

    attribution_window: timedelta = timedelta(hours=72)
    conversions: Mapping[str, float | None] = field(
        default_factory=lambda: MappingProxyType({"conversion": 1.0})
    )
    """Conversion events and their value; None means "the value posted with the event"."""
    penalties: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({"unsubscribe": 1.0, "complaint": 2.0})
    )
    """Events that cost something, and how much (subtracted)."""
    prior_value: float = 1.0
    """The value of one conversion the offline model predicts.

    It turns the model's probability into a prior, and it is the unit the policy learns in.
    """
    uplift_aware: bool = False
    """Subtract the holdout's mean reward in this journey: the policy learns incremental value."""

    def reward_of(self, event: str, value: float | None) -> float:
        """The reward of one outcome event: a conversion's value, minus a penalty, else 0."""
        if event in self.conversions:
            nominal = self.conversions[event]
            if nominal is None:
                return 0.0 if value is None else value
            return nominal
        return -self.penalties.get(event, 0.0)


@dataclass(frozen=True)
class DecisionConfig:
    channels: Mapping[str, ChannelSpec]
    messages: Mapping[str, MessageSpec]
    slots: tuple[SlotSpec, ...]
    contact: ContactRules
    horizon: timedelta = timedelta(hours=24)
    holdout_percent: float = 5.0
    holdout_salt: str = "nudge-holdout"
    exploration: float = 0.05
    """The share of decisions made uniformly at random over the eligible set."""
    control_arm: str | None = None
    """The offline model's no-contact action, the prior of "no send"."""
    rewards: Mapping[str, RewardSpec] = field(
        default_factory=lambda: MappingProxyType({"default": RewardSpec()})
    )

    def reward_for(self, journey: str) -> RewardSpec:
        return self.rewards.get(journey) or self.rewards["default"]

    @property
    def events(self) -> frozenset[str]:
        """Every outcome event some journey gives a reward (or a penalty)."""
        names: set[str] = set()
        for spec in self.rewards.values():
            names.update(spec.conversions, spec.penalties)
        return frozenset(names)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: object, where: str) -> timedelta:
    """ "72h", "7d", "90m", "30s" as a timedelta.

    >>> parse_duration("7d", "caps[0].window")
    datetime.timedelta(days=7)
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidRequest(where, 'must be a duration such as "30m", "72h" or "7d"', text)
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def load_decision_config(path: Path | str) -> DecisionConfig:
    """Read and check a decision configuration file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InvalidRequest("decision_config", "must be a readable YAML file", str(path)) from err
    except yaml.YAMLError as err:
        raise InvalidRequest("decision_config", f"must be valid YAML ({err})", str(path)) from err
    return parse_decision_config(raw)


def parse_decision_config(raw: object) -> DecisionConfig:
    doc = _mapping(raw, "decision_config")
    known = {
        "channels",
        "messages",
        "slots",
        "horizon",
        "quiet_hours",
        "caps",
        "default_time_zone",
        "holdout",
        "exploration",
        "control_arm",
        "rewards",
    }
    for key in doc:
        if key not in known:
            raise InvalidRequest(str(key), f"is not a setting; expected one of {sorted(known)}")
    channels = {
        name: ChannelSpec(
            name,
            _number(
                _mapping(spec, f"channels.{name}").get("cost", 0.0),
                f"channels.{name}.cost",
                minimum=0.0,
            ),
        )
        for name, spec in _mapping(doc.get("channels"), "channels").items()
    }
    if not channels:
        raise InvalidRequest("channels", "must name at least one channel")
    messages = {
        name: _message(name, spec, channels)
        for name, spec in _mapping(doc.get("messages"), "messages").items()
    }
    if not messages:
        raise InvalidRequest("messages", "must name at least one message")
    slot_texts = doc.get("slots", ["now"])
    if not isinstance(slot_texts, list) or not slot_texts:
        raise InvalidRequest("slots", "must be a non-empty list of slots", slot_texts)
    slots = tuple(parse_slot(str(text)) for text in slot_texts)
    if len({slot.name for slot in slots}) != len(slots):
        raise InvalidRequest("slots", "must not repeat a slot", slot_texts)
    zone_name = doc.get("default_time_zone", "UTC")
    load_zone(zone_name, "default_time_zone")
    contact = ContactRules(
        quiet_exempt=_quiet_exempt(doc.get("channels")),
        caps=tuple(
            _cap(spec, f"caps[{i}]", channels) for i, spec in enumerate(doc.get("caps") or [])
        ),
        quiet_hours=_quiet_hours(doc.get("quiet_hours")),
        default_time_zone=str(zone_name),
    )
    holdout = _mapping(doc.get("holdout", {}), "holdout")
    rewards = {
        name: _reward(spec, f"rewards.{name}")
        for name, spec in _mapping(doc.get("rewards", {"default": {}}), "rewards").items()
    }
    if "default" not in rewards:
        raise InvalidRequest("rewards.default", "must be given: journeys without their own use it")
    control_arm = doc.get("control_arm")
    if control_arm is not None and not isinstance(control_arm, str):
        raise InvalidRequest("control_arm", "must be the model's no-contact action", control_arm)
    salt = holdout.get("salt", "nudge-holdout")
    if not isinstance(salt, str) or not salt:
        raise InvalidRequest("holdout.salt", "must be a non-empty string", salt)
    return DecisionConfig(
        channels=MappingProxyType(channels),
        messages=MappingProxyType(messages),
        slots=slots,
        contact=contact,
        horizon=parse_duration(doc.get("horizon", "24h"), "horizon"),
        holdout_percent=_number(holdout.get("percent", 5.0), "holdout.percent", 0.0, 100.0),
        holdout_salt=salt,
        exploration=_number(doc.get("exploration", 0.05), "exploration", 0.0, 1.0),
        control_arm=control_arm,
        rewards=MappingProxyType(rewards),
    )


def _mapping(raw: object, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise InvalidRequest(where, "must be a mapping with string keys", type(raw).__name__)
    return raw


def _number(
    raw: object, where: str, minimum: float | None = None, maximum: float | None = None
) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise InvalidRequest(where, "must be a finite number", raw)
    if (minimum is not None and raw < minimum) or (maximum is not None and raw > maximum):
        raise InvalidRequest(where, f"must be between {minimum} and {maximum}", raw)
    return float(raw)


def _quiet_exempt(raw: object) -> frozenset[str]:
    """Channels with ``quiet_hours: false``: an ad audience wakes no one at night."""
    exempt = set()
    for name, spec in _mapping(raw, "channels").items():
        applies = _mapping(spec, f"channels.{name}").get("quiet_hours", True)
        if not isinstance(applies, bool):
            raise InvalidRequest(f"channels.{name}.quiet_hours", "must be true or false", applies)
        if not applies:
            exempt.add(name)
    return frozenset(exempt)


def _message(name: str, raw: object, channels: Mapping[str, ChannelSpec]) -> MessageSpec:
    spec = _mapping(raw, f"messages.{name}")
    allowed = spec.get("channels", sorted(channels))
    if not isinstance(allowed, list) or not allowed:
        raise InvalidRequest(f"messages.{name}.channels", "must be a non-empty list", allowed)
    for i, channel in enumerate(allowed):
        if channel not in channels:
            raise InvalidRequest(
                f"messages.{name}.channels[{i}]", f"must be one of {sorted(channels)}", channel
            )
    arm = spec.get("model_arm")
    if arm is not None and not isinstance(arm, str):
        raise InvalidRequest(f"messages.{name}.model_arm", "must be a string", arm)
    transactional = spec.get("transactional", False)
    if not isinstance(transactional, bool):
        raise InvalidRequest(
            f"messages.{name}.transactional", "must be true or false", transactional
        )
    return MessageSpec(name, tuple(allowed), arm, transactional)


def _cap(raw: object, where: str, channels: Mapping[str, ChannelSpec]) -> FrequencyCap:
    spec = _mapping(raw, where)
    channel = spec.get("channel")
    if channel is not None and channel not in channels:
        raise InvalidRequest(f"{where}.channel", f"must be one of {sorted(channels)}", channel)
    limit = spec.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidRequest(f"{where}.limit", "must be a whole number ≥ 0, or blank", limit)
    return FrequencyCap(
        limit=limit, window=parse_duration(spec.get("window"), f"{where}.window"), channel=channel
    )


def _clock(raw: object, where: str) -> time:
    try:
        return time.fromisoformat(str(raw))
    except ValueError:
        raise InvalidRequest(where, 'must be a time of day such as "21:00"', raw) from None


def _quiet_hours(raw: object) -> QuietHours | None:
    if raw is None:
        return None
    spec = _mapping(raw, "quiet_hours")
    return QuietHours(
        start=_clock(spec.get("start"), "quiet_hours.start"),
        end=_clock(spec.get("end"), "quiet_hours.end"),
    )


def _reward(raw: object, where: str) -> RewardSpec:
    spec = _mapping(raw, where)
    base = RewardSpec()
    window = (
        parse_duration(spec["attribution_window"], f"{where}.attribution_window")
        if "attribution_window" in spec
        else base.attribution_window
    )
    if window > MAX_ATTRIBUTION_WINDOW:
        raise InvalidRequest(f"{where}.attribution_window", "must be at most 30 days", window)
    conversions: dict[str, float | None] = {}
    for event, value in _mapping(
        spec.get("conversions", dict(base.conversions)), f"{where}.conversions"
    ).items():
        conversions[event] = (
            None if value in (None, "value") else _number(value, f"{where}.conversions.{event}")
        )
    penalties = {
        event: _number(value, f"{where}.penalties.{event}", minimum=0.0)
        for event, value in _mapping(
            spec.get("penalties", dict(base.penalties)), f"{where}.penalties"
        ).items()
    }
    uplift_aware = spec.get("uplift_aware", False)
    if not isinstance(uplift_aware, bool):
        raise InvalidRequest(f"{where}.uplift_aware", "must be true or false", uplift_aware)
    return RewardSpec(
        attribution_window=window,
        conversions=MappingProxyType(conversions),
        penalties=MappingProxyType(penalties),
        prior_value=_number(spec.get("prior_value", 1.0), f"{where}.prior_value"),
        uplift_aware=uplift_aware,
    )
