"""The file outbox's durability details: restarts, torn lines, the record written."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from channels import FileOutbox, OutboundMessage, TemplateRenderer, TrackingLinks, compose
from features.errors import InvalidRequest


def _message(message_id: str) -> OutboundMessage:
    return OutboundMessage(
        message_id, "c-1", "email", "a@example.com", "hi", subject="s", metadata={"step": "1"}
    )


def test_the_record_holds_the_whole_message(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path / "o.jsonl", name="email")
    receipt = outbox.send(_message("d-1"))
    (record,) = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert record == {
        "message_id": "d-1",
        "customer_id": "c-1",
        "channel": "email",
        "to": "a@example.com",
        "subject": "s",
        "body_text": "hi",
        "body_html": None,
        "headers": {},
        "metadata": {"step": "1"},
        "accepted_at": receipt.accepted_at.isoformat(),
    }


def test_a_composed_email_in_the_outbox_carries_both_unsubscribe_headers(tmp_path: Path) -> None:
    links = TrackingLinks("tracking-secret", "https://t.example.com")
    message = compose(
        TemplateRenderer(),
        links,
        message_id="d-7",
        customer_id="c-1",
        message="welcome",
        channel="email",
        to="a@example.com",
        variables={"first_name": "Ann"},
    )
    FileOutbox(tmp_path / "o.jsonl", name="email").send(message)
    (record,) = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert record["headers"] == {
        "List-Unsubscribe": f"<{links.unsubscribe_url('d-7')}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_a_line_torn_by_a_crash_is_resent_on_a_line_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    FileOutbox(path, name="email").send(_message("d-1"))
    with path.open("a") as torn:
        torn.write('{"message_id": "d-2", "custo')
    restarted = FileOutbox(path, name="email")
    restarted.send(_message("d-1"))  # known: not written again
    restarted.send(_message("d-2"))  # never acknowledged: written again
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert [json.loads(lines[0])["message_id"], json.loads(lines[2])["message_id"]] == [
        "d-1",
        "d-2",
    ]
    assert FileOutbox(path, name="email")._accepted.keys() == {"d-1", "d-2"}


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "<x>", "x" * 129])
def test_a_message_id_must_be_safe_in_headers_and_urls(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="`message_id` must be 1-128 letters"):
        _message(bad)


def test_a_message_pickles_and_owns_its_dicts() -> None:
    headers = {"X-A": "1"}
    message = OutboundMessage("d-1", "c", "sms", "+1", "t", headers=headers)
    headers["X-A"] = "changed"
    assert message.headers == {"X-A": "1"}
    assert pickle.loads(pickle.dumps(message)) == message
