"""Contact profiles and reserved sends in Redis: the scale-mode :class:`ContactStore`.

Keys, under ``prefix``:

- ``{prefix}:contact:profile:{customer_id}``, a hash: ``time_zone`` and, per
  channel, ``{channel}:consent``, ``:consent_at``, ``:suppressed``,
  ``:suppressed_at`` (times in epoch microseconds) and ``:reachable`` ("1"/"0");
- ``{prefix}:contact:sends:{customer_id}``, a sorted set of the reserved sends,
  scored by ``send_at`` in epoch seconds, each member the JSON
  ``[decision_id, channel]``;
- ``{prefix}:contact:send:{decision_id}``, the JSON ``[sends key, member]``,
  so a send can be released by its decision id.

Counting and adding a send is one Lua script, so Redis runs it as one step
however many API workers reserve at once. A customer's sends key expires
once they have had no reservation for the longest cap window plus the
slack, and a decision's key that long after its reservation, so nothing
accumulates for customers who are no longer contacted. The client may
decode responses or not: every value read is decoded here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import redis
from redis.typing import EncodableT

from decisioning.contact_rules import FrequencyCap
from decisioning.contact_store import (
    SUPPRESSION_REASONS,
    ChannelState,
    ConsentState,
    ContactProfile,
    Send,
)
from decisioning.slots import load_zone
from features.errors import InvalidRequest

__all__ = ["RedisContactStore"]

_BATCH = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# KEYS: sends zset, the decision's send key. ARGV: member, score, send key value,
# prune bound, time to live (ms), then per cap: limit, low, high, channel ("" for all).
# Returns 0 when recorded (or already recorded), else the 1-based cap that blocks.
_RESERVE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = 0
for i = 6, #ARGV, 4 do
  n = n + 1
  local low, high, channel = '(' .. ARGV[i + 1], '(' .. ARGV[i + 2], ARGV[i + 3]
  local count = 0
  if channel == '' then
    count = redis.call('ZCOUNT', KEYS[1], low, high)
  else
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], low, high)) do
      if cjson.decode(member)[2] == channel then count = count + 1 end
    end
  end
  if count >= tonumber(ARGV[i]) then return n end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[5])
return 0
"""

# KEYS: the decision's send key. ARGV: none. The sends key is read from it, so
# this needs a single Redis server (not a cluster). A pruned send is not removed.
_RELEASE = """
local ref = redis.call('GET', KEYS[1])
if not ref then return 0 end
redis.call('DEL', KEYS[1])
ref = cjson.decode(ref)
return redis.call('ZREM', ref[1], ref[2])
"""

# KEYS: profile hash. ARGV: value field, time field, value, time (epoch microseconds).
# A change older than the recorded one is ignored.
_SET_IF_NEWER = """
local recorded = redis.call('HGET', KEYS[1], ARGV[2])
if recorded and tonumber(recorded) > tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3], ARGV[2], ARGV[4])
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _check_moment(moment: object) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise InvalidRequest("at", "must be a time-zone-aware datetime", moment)
    return moment


def _score(moment: datetime) -> str:
    # The shortest repr round-trips exactly, so the same instant always gives
    # the same score and a window's open bound excludes a send exactly on it.
    return repr(moment.timestamp())


class RedisContactStore:
    """A :class:`ContactStore` in Redis, shared by every API worker.

    Sends further back than the longest cap window plus ``prune_slack``
    before a new reservation can no longer count and are removed by it;
    ``prune_slack`` must exceed how far a later reservation's send time can
    lie before an earlier one's (the slot horizon).

    >>> import uuid
    >>> from datetime import UTC, datetime, timedelta
    >>> client = redis.Redis(host="127.0.0.1", port=6379)
    >>> store = RedisContactStore(client, prefix=f"doctest-{uuid.uuid4().hex}")
    >>> cap = FrequencyCap(1, timedelta(days=1), "sms")
    >>> at = datetime(2024, 5, 1, 9, tzinfo=UTC)
    >>> store.reserve("c1", Send("d1", "sms", at), [cap]) is None
    True
    >>> store.reserve("c1", Send("d2", "sms", at + timedelta(hours=3)), [cap]).label
    'sms cap 1 per day'
    >>> store.release("d1"), store.sends("c1")
    (True, [])
    >>> store.close()
    >>> for key in client.scan_iter(f"{store.prefix}:*"):
    ...     _ = client.delete(key)
    >>> client.close()
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "nudge",
        *,
        prune_slack: timedelta = timedelta(days=7),
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise InvalidRequest("prefix", "must be a non-empty string", prefix)
        self.client = client
        self.prefix = prefix
        self.prune_slack = prune_slack
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)
        self._set_if_newer = client.register_script(_SET_IF_NEWER)

    def _profile_key(self, customer_id: str) -> str:
        return f"{self.prefix}:contact:profile:{customer_id}"

    def _sends_key(self, customer_id: str) -> str:
        return f"{self.prefix}:contact:sends:{customer_id}"

    def _send_key(self, decision_id: str) -> str:
        return f"{self.prefix}:contact:send:{decision_id}"

    def profile(self, customer_id: str) -> ContactProfile:
        raw = self.client.hgetall(self._profile_key(customer_id))
        fields = {_text(key): _text(value) for key, value in raw.items()}
        zone = fields.pop("time_zone", None)
        by_channel: dict[str, dict[str, str]] = {}
        for key, value in fields.items():
            channel, _, attribute = key.rpartition(":")
            by_channel.setdefault(channel, {})[attribute] = value
        channels = {name: _state(values) for name, values in by_channel.items()}
        return ContactProfile(customer_id, channels, zone or None)

    def set_consent(self, customer_id: str, channel: str, opted_in: bool, at: datetime) -> None:
        consent: ConsentState = "opted_in" if opted_in else "opted_out"
        micros = _micros(_check_moment(at))
        self._set_if_newer(
            keys=[self._profile_key(customer_id)],
            args=[f"{channel}:consent", f"{channel}:consent_at", consent, micros],
        )

    def suppress(self, customer_id: str, channel: str, reason: str, at: datetime) -> None:
        if reason not in SUPPRESSION_REASONS:
            raise InvalidRequest("reason", f"must be one of {SUPPRESSION_REASONS}", reason)
        micros = _micros(_check_moment(at))
        self._set_if_newer(
            keys=[self._profile_key(customer_id)],
            args=[f"{channel}:suppressed", f"{channel}:suppressed_at", reason, micros],
        )

    def set_reachable(self, customer_id: str, channel: str, reachable: bool) -> None:
        value = "1" if reachable else "0"
        self.client.hset(self._profile_key(customer_id), f"{channel}:reachable", value)

    def set_time_zone(self, customer_id: str, zone: str | None) -> None:
        key = self._profile_key(customer_id)
        if zone is None:
            self.client.hdel(key, "time_zone")
        else:
            load_zone(zone, "time_zone")
            self.client.hset(key, "time_zone", zone)

    def load_profiles(self, profiles: Iterable[ContactProfile]) -> int:
        """Replace each profile; each batch of 1,000 is one MULTI/EXEC transaction.

        Batches keep the server responsive during a large load, and a reader
        never sees a profile half-written.
        """
        loaded = 0
        pipe = self.client.pipeline(transaction=True)
        for profile in profiles:
            key = self._profile_key(profile.customer_id)
            pipe.delete(key)
            fields = _fields(profile)
            if fields:
                pipe.hset(key, mapping=fields)
            loaded += 1
            if loaded % _BATCH == 0:
                pipe.execute()
        pipe.execute()
        return loaded

    def sends(self, customer_id: str) -> list[Send]:
        entries = cast(
            "list[tuple[bytes | str, float]]",
            self.client.zrange(self._sends_key(customer_id), 0, -1, withscores=True),
        )
        sends = []
        for member, score in entries:
            decision_id, channel = json.loads(_text(member))
            sends.append(Send(decision_id, channel, datetime.fromtimestamp(float(score), UTC)))
        return sends

    def reserve(
        self, customer_id: str, send: Send, caps: Sequence[FrequencyCap]
    ) -> FrequencyCap | None:
        checked = [cap for cap in caps if cap.active and cap.applies_to(send.channel)]
        longest = max((cap.window for cap in caps if cap.active), default=timedelta(0))
        keep = longest + self.prune_slack
        sends_key = self._sends_key(customer_id)
        member = json.dumps([send.decision_id, send.channel], separators=(",", ":"))
        args: list[str | int] = [
            member,
            _score(send.send_at),
            json.dumps([sends_key, member], separators=(",", ":")),
            _score(send.send_at - keep),
            max(1, keep // timedelta(milliseconds=1)),
        ]
        for cap in checked:
            assert cap.limit is not None  # active
            args += [
                cap.limit,
                _score(send.send_at - cap.window),
                _score(send.send_at + cap.window),
                cap.channel or "",
            ]
        keys = [sends_key, self._send_key(send.decision_id)]
        blocked = int(self._reserve(keys=keys, args=args))
        return None if blocked == 0 else checked[blocked - 1]

    def release(self, decision_id: str) -> bool:
        return bool(self._release(keys=[self._send_key(decision_id)]))

    def close(self) -> None:
        """The client was handed in, so whoever made it closes it; nothing to do here."""


def _state(values: dict[str, str]) -> ChannelState:
    consent = values.get("consent", "unknown")
    return ChannelState(
        consent,  # type: ignore[arg-type]  # checked by ChannelState
        values.get("suppressed") or None,
        values.get("reachable") == "1",
        _moment(values.get("consent_at")),
        _moment(values.get("suppressed_at")),
    )


def _moment(micros: str | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=int(micros))


def _fields(profile: ContactProfile) -> dict[EncodableT, EncodableT]:
    fields: dict[EncodableT, EncodableT] = {}
    if profile.time_zone is not None:
        fields["time_zone"] = profile.time_zone
    for name, state in profile.channels.items():
        fields[f"{name}:consent"] = state.consent
        fields[f"{name}:reachable"] = "1" if state.reachable else "0"
        if state.suppressed is not None:
            fields[f"{name}:suppressed"] = state.suppressed
        if state.consent_at is not None:
            fields[f"{name}:consent_at"] = str(_micros(state.consent_at))
        if state.suppressed_at is not None:
            fields[f"{name}:suppressed_at"] = str(_micros(state.suppressed_at))
    return fields
