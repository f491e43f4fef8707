"""Keeping ad audiences in step: events that change who belongs, and the incremental sync.

A sync (run every minute or so by ``nudge audiences sync``) does, in order:

1. reads the event stream since its own cursor: identify/profile events give
   hashed identifiers; a purchase or goal event removes the customer from the
   retargeting audiences and, for ``buyer_window``, from the acquisition ones;
   an ``ads`` opt-out (``consent_update``) removes them from every audience;
2. drops every wanted member whose ``ads`` consent is not ``opted_in`` (or who is
   suppressed) in the contact store — so a revocation that came another way (the
   API's contact profile) is caught too — and recent buyers from acquisition audiences;
3. resends the batches a crashed sync left open, with their own batch ids;
4. plans and sends the difference between desired and confirmed, removals first,
   in batches, each retried by the channel it goes through (``RetryingChannel``);
5. records per audience the members confirmed added and removed, the failures and
   those skipped for want of an identifier.

A removal is therefore at most one sync interval (plus retries) behind the event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from channels.ads import AudienceSpec, batch_message, hashed_identifiers
from channels.audiences import AudienceStore, Batch, SyncCounts
from channels.types import Channel, SendFailed
from decisioning.contact_store import ContactStore
from features.errors import InvalidRequest
from features.event_stream import CustomerEvent, EventStream

__all__ = ["AudienceRules", "AudienceSync", "SyncResult"]

ADS = "ads"
_CURSOR = "event_stream"


class AudienceRules:
    """What customer events mean for audiences; ``apply`` is safe to repeat for one event."""

    def __init__(
        self,
        store: AudienceStore,
        audiences: Sequence[AudienceSpec],
        *,
        conversions: Sequence[str] = ("purchase", "conversion"),
        buyer_window: timedelta = timedelta(days=30),
        default_region: str | None = None,
    ) -> None:
        self.store = store
        self.audiences = {spec.name: spec for spec in audiences}
        self.conversions = frozenset(conversions)
        self.buyer_window = buyer_window
        self.default_region = default_region

    def of_kind(self, kind: str) -> list[str]:
        return [name for name, spec in self.audiences.items() if spec.kind == kind]

    def add(self, audience: str, customer_id: str, at: datetime, reason: str) -> bool:
        """An explicit add (a segment, an operator); a recent buyer stays out of acquisition."""
        spec = self.audiences.get(audience)
        if spec is None:
            raise InvalidRequest("audience", f"must be one of {sorted(self.audiences)}", audience)
        if spec.kind == "acquisition" and self.recent_buyer(customer_id, at):
            return False
        return self.store.want(audience, customer_id, at, reason)

    def recent_buyer(self, customer_id: str, at: datetime) -> bool:
        bought = self.store.last_purchase(customer_id)
        return bought is not None and at - bought < self.buyer_window

    def apply(self, event: CustomerEvent) -> None:
        customer, payload, at = event.customer_id, event.payload, event.occurred_at
        if event.type in ("identify", "login", "profile_update"):
            try:
                ids = hashed_identifiers(
                    payload.get("email"), payload.get("phone"), self.default_region
                )
            except InvalidRequest:
                ids = {}  # the event stream already refused what it could not use
            if ids:
                self.store.set_identity(customer, ids, at)
        if event.type in self.conversions:
            self.store.record_purchase(customer, at)
            self.store.drop_everywhere(customer, at, f"converted:{event.event_id}")
        if event.type == "consent_update" and _ads_opt_out(payload):
            self.store.drop_everywhere(customer, at, f"consent:{event.event_id}")


def _ads_opt_out(payload: Mapping[str, Any]) -> bool:
    if payload.get("channel") == ADS and payload.get("consent") == "opted_out":
        return True
    channels = payload.get("channels")
    return isinstance(channels, Mapping) and channels.get(ADS) == "opted_out"


@dataclass
class SyncResult:
    sync_id: int
    counts: dict[str, SyncCounts] = field(default_factory=dict)
    events: int = 0

    @property
    def failures(self) -> int:
        return sum(c.failures for c in self.counts.values())


class AudienceSync:
    """One incremental sync per :meth:`run`; ``api`` is the network's channel, already retried."""

    def __init__(
        self,
        store: AudienceStore,
        rules: AudienceRules,
        api: Channel,
        *,
        contacts: ContactStore | None = None,
        stream: EventStream | None = None,
        batch_size: int = 500,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if batch_size < 1:
            raise InvalidRequest("batch_size", "must be at least 1", batch_size)
        self.store = store
        self.rules = rules
        self.api = api
        self.contacts = contacts
        self.stream = stream
        self.batch_size = batch_size
        self.clock = clock

    def run(self) -> SyncResult:
        now = self.clock()
        events = self._consume()
        self._enforce_consent(now)
        result = SyncResult(self.store.begin_sync(now), events=events)
        for batch in self.store.open_batches():
            self._send(batch, result)
        for audience in sorted(set(self.rules.audiences) | set(self.store.audiences())):
            for batch in self.store.plan(result.sync_id, audience, self.batch_size, now):
                self._send(batch, result)
            counts = result.counts.setdefault(audience, SyncCounts())
            counts.skipped = self.store.unplannable(audience)
        self.store.finish_sync(result.sync_id, result.counts, self.clock())
        return result

    def _consume(self) -> int:
        if self.stream is None:
            return 0
        done = 0
        while True:
            events = self.stream.read(self.store.cursor(_CURSOR), limit=500)
            if not events:
                return done
            for event in events:
                self.rules.apply(event)
            # After the changes: a crash in between re-applies them, which is harmless.
            self.store.set_cursor(_CURSOR, events[-1].offset)
            done += len(events)

    def _enforce_consent(self, now: datetime) -> None:
        acquisition = set(self.rules.of_kind("acquisition"))
        for audience in self.store.audiences():
            for customer in sorted(self.store.desired(audience)):
                # A journey send can name an acquisition audience too: buyers stay out.
                if audience in acquisition and self.rules.recent_buyer(customer, now):
                    self.store.drop(audience, customer, now, "recent buyer")
                    continue
                if self.contacts is None:
                    continue
                state = self.contacts.profile(customer).channel(ADS)
                if state.consent != "opted_in" or state.suppressed is not None:
                    why = state.suppressed or f"consent {state.consent}"
                    self.store.drop(audience, customer, now, f"no ads consent ({why})")

    def _send(self, batch: Batch, result: SyncResult) -> None:
        counts = result.counts.setdefault(batch.audience, SyncCounts())
        spec = self.rules.audiences.get(batch.audience)
        if spec is None:
            self.store.failed(batch, "audience not configured", permanent=True, at=self.clock())
            counts.failures += 1
            return
        try:
            self.api.send(batch_message(batch, spec.network_id))
        except SendFailed as err:
            self.store.failed(batch, err.detail, permanent=not err.transient, at=self.clock())
            counts.failures += 1
            return
        self.store.confirm(batch, self.clock())
        if batch.op == "add":
            counts.adds += len(batch.members)
        else:
            counts.removes += len(batch.members)
