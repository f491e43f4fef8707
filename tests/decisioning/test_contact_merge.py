"""A merged customer's consent, suppressions, reachability and zone follow them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from decisioning.contact_merge import merge_contacts
from decisioning.sqlite_contact import SQLiteContactStore

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_the_latest_consent_wins_and_suppressions_carry_over(tmp_path: Path) -> None:
    contacts = SQLiteContactStore(tmp_path / "contacts.db")
    contacts.set_consent("c1", "email", True, T0)
    contacts.set_consent("anon", "email", False, T0 + timedelta(hours=1))  # later: wins
    contacts.set_consent("anon", "sms", True, T0 - timedelta(days=1))
    contacts.set_consent("c1", "sms", False, T0)  # later than anon's opt-in: stays
    contacts.suppress("anon", "push", "complaint", T0)
    contacts.set_reachable("anon", "sms", True)
    contacts.set_time_zone("anon", "Asia/Tokyo")

    for _ in range(2):  # done twice after a crash: the same end
        merge_contacts(contacts, "anon", "c1")
        profile = contacts.profile("c1")
        assert profile.channel("email").consent == "opted_out"
        assert profile.channel("sms").consent == "opted_out"
        assert profile.channel("push").suppressed == "complaint"
        assert profile.channel("sms").reachable
        assert profile.time_zone == "Asia/Tokyo"
    contacts.close()


def test_the_survivors_zone_and_reachability_are_kept(tmp_path: Path) -> None:
    contacts = SQLiteContactStore(tmp_path / "contacts.db")
    contacts.set_time_zone("c1", "Europe/Paris")
    contacts.set_time_zone("anon", "Asia/Tokyo")
    contacts.set_reachable("c1", "email", True)
    merge_contacts(contacts, "anon", "c1")
    profile = contacts.profile("c1")
    assert profile.time_zone == "Europe/Paris"
    assert profile.channel("email").reachable
    assert profile.channel("email").consent == "unknown"
    contacts.close()
