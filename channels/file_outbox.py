"""The demo's channel: one JSON line per message in a file, durable and idempotent.

>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "outbox" / "email.jsonl"
>>> outbox = FileOutbox(path, name="email")
>>> message = OutboundMessage("d1", "c1", "email", "ann@example.com", "Hi", subject="Hello")
>>> first = outbox.send(message)
>>> FileOutbox(path, name="email").send(message) == first  # a restart remembers it
True
>>> len(path.read_text().splitlines())
1
"""

from __future__ import annotations

import errno
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from channels.types import OutboundMessage, Receipt, SendFailed

__all__ = ["FileOutbox"]

# A missing directory (an unmounted volume), a full disk or an I/O hiccup may pass;
# anything else (a directory where the file should be, no permission) will not.
_TRANSIENT_ERRNOS = {errno.ENOENT, errno.ENOSPC, errno.EIO, errno.EAGAIN, errno.EINTR}


class FileOutbox:
    """Appends each message as a JSON line to ``path``, fsync'd before the Receipt.

    A message id already in the file is not written again: the ids are loaded when the
    outbox opens, so this holds across restarts. One process writes one file.
    """

    def __init__(self, path: Path | str, *, name: str) -> None:
        self.path = Path(path)
        self.name = name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._closed = False
        self._torn = False
        self._accepted: dict[str, datetime] = self._load()

    def send(self, message: OutboundMessage) -> Receipt:
        with self._lock:
            if self._closed:
                raise SendFailed(self.name, message.message_id, "outbox is closed", transient=False)
            known = self._accepted.get(message.message_id)
            if known is not None:
                return Receipt(message.message_id, self.name, None, known)
            accepted_at = datetime.now(UTC)
            self._append(message, accepted_at)
            self._accepted[message.message_id] = accepted_at
        return Receipt(message.message_id, self.name, None, accepted_at)

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def _load(self) -> dict[str, datetime]:
        accepted: dict[str, datetime] = {}
        if not self.path.exists():
            return accepted
        with self.path.open(encoding="utf-8") as lines:
            line = ""
            for line in lines:
                try:
                    record = json.loads(line)
                    accepted[record["message_id"]] = datetime.fromisoformat(record["accepted_at"])
                except (ValueError, KeyError, TypeError):
                    # A line cut short by a crash was never acknowledged: its message is
                    # sent again, which is what the sender expects.
                    continue
            # The next line must not be glued onto a torn one.
            self._torn = bool(line) and not line.endswith("\n")
        return accepted

    def _append(self, message: OutboundMessage, accepted_at: datetime) -> None:
        record = {
            "message_id": message.message_id,
            "customer_id": message.customer_id,
            "channel": message.channel,
            "to": message.to,
            "subject": message.subject,
            "body_text": message.body_text,
            "body_html": message.body_html,
            "headers": dict(message.headers),
            "metadata": dict(message.metadata),
            "accepted_at": accepted_at.isoformat(),
        }
        try:
            line = json.dumps(record, ensure_ascii=False) + "\n"
            data = line.encode("utf-8")
        except (TypeError, ValueError, UnicodeEncodeError) as err:
            raise SendFailed(
                self.name, message.message_id, f"not UTF-8 JSON ({err})", transient=False
            ) from err
        try:
            # Opened per send, not held: a rotated or re-created file is written, not a
            # deleted inode.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, b"\n" + data if self._torn else data)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._torn = False
        except OSError as err:
            raise SendFailed(
                self.name,
                message.message_id,
                f"cannot append to {self.path} ({err})",
                transient=err.errno in _TRANSIENT_ERRNOS,
            ) from err
