"""Events stitched to one customer as they arrive: identify/login events link identifiers.

An ``identify`` or ``login`` event names the customer and carries the
identifiers seen with them in its payload (``anonymous_id``, ``device_id``,
``email``, ``phone``). :class:`StitchingStream` links those in the identity
graph and stores every event under its customer's surviving id, all in the
commit that stores the events: an event that arrives late under an anonymous
id already merged lands on the customer it was merged into, and a crash never
leaves a link without its event or an event without its link.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from features.errors import InvalidRequest
from features.event_stream import CustomerEvent, EventStream
from features.identity import IDENTIFIER_KINDS, IdentityGraph

__all__ = ["STITCHING_EVENTS", "StitchingStream"]

STITCHING_EVENTS = frozenset({"identify", "login"})


class StitchingStream:
    """An :class:`EventStream` whose writes go through the identity graph first.

    The graph must live in the stream's database (``IdentityGraph(stream.db, key,
    listeners=[stream])``), so that links, merges, moved history and the new
    events share one transaction.
    """

    def __init__(self, stream: EventStream, graph: IdentityGraph) -> None:
        self.stream = stream
        self.graph = graph

    def check(self, event: CustomerEvent, where: str = "") -> None:
        """Raise ``InvalidRequest`` naming the payload field of an unusable identifier."""
        if event.type not in STITCHING_EVENTS:
            return
        for kind in IDENTIFIER_KINDS:
            value = event.payload.get(kind)
            if value is None:
                continue
            try:
                self.graph.hash(kind, value)
            except InvalidRequest as error:
                raise InvalidRequest(f"{where}payload.{kind}", error.expected, value) from None

    def append_new(
        self, events: Sequence[CustomerEvent], now: datetime | None = None
    ) -> tuple[set[str], list[CustomerEvent]]:
        """Stitch and store ``events`` in one commit: the ids that were new, and the events
        as stored (each under its customer's surviving id)."""
        with self.stream.db.transaction():
            for event in events:
                if event.type in STITCHING_EVENTS:
                    identifiers = {
                        kind: event.payload[kind]
                        for kind in IDENTIFIER_KINDS
                        if event.payload.get(kind) is not None
                    }
                    self.graph.identify(event.customer_id, identifiers, now)
            # After every link of the batch: an event listed before the login that
            # merged its customer still lands on the survivor.
            stored = [
                event
                if (customer := self.graph.canonical(event.customer_id)) == event.customer_id
                else replace(event, customer_id=customer)
                for event in events
            ]
            new = self.stream.append_new(stored, now)
        return new, stored

    def merge_contacts(self, merge: Callable[[str, str], None]) -> int:
        """Apply ``merge(merged_id, into_id)`` to every merge whose contacts are not merged
        yet, marking each done after it; how many were applied."""
        pending = self.graph.pending_contact_merges()
        for merged_id, into_id in pending:
            merge(merged_id, into_id)
            self.graph.contacts_merged(merged_id, into_id)
        return len(pending)
