"""One customer's contact profile folded into another's when identity merges them.

The latest consent statement per channel wins (``set_consent`` ignores an
older one), whichever identity it was given under; a suppression carries over
(a hard bounce or a complaint under either identity is the same person's);
reachability and a time zone are added where the survivor has none. Each step
is idempotent, so a merge done twice (after a crash) ends the same.
"""

from __future__ import annotations

from datetime import UTC, datetime

from decisioning.contact_store import ContactStore

__all__ = ["merge_contacts"]


def merge_contacts(contacts: ContactStore, merged_id: str, into_id: str) -> None:
    """Fold ``merged_id``'s consent, suppressions, reachability and zone into ``into_id``."""
    merged = contacts.profile(merged_id)
    survivor = contacts.profile(into_id)
    for channel, state in merged.channels.items():
        if state.consent != "unknown":
            contacts.set_consent(
                into_id,
                channel,
                state.consent == "opted_in",
                state.consent_at or datetime.fromtimestamp(0, UTC),
            )
        if state.suppressed is not None:
            contacts.suppress(
                into_id, channel, state.suppressed, state.suppressed_at or datetime.now(UTC)
            )
        if state.reachable and not survivor.channel(channel).reachable:
            contacts.set_reachable(into_id, channel, True)
    if merged.time_zone and not survivor.time_zone:
        contacts.set_time_zone(into_id, merged.time_zone)
