"""A loopback ad network: ``POST /audiences/{id}/members:add|remove`` with hashed members.

It keeps each audience's members (by their hashes), applies a batch id once (a
resend answers 200 with ``duplicate: true``), and can be told to fail the next
requests (``fail``) to exercise retries.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATH = re.compile(r"^/audiences/([^/]+)/members:(add|remove)$")


class FakeAdNetwork:
    def __init__(self) -> None:
        self.audiences: dict[str, set[str]] = {}
        """Network audience id -> the ``em`` (else ``ph``) hashes in it."""
        self.requests: list[dict[str, Any]] = []
        self.applied: list[str] = []
        """Batch ids applied, once each, in order."""
        self.plan: deque[int] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeAdNetwork:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, times: int, status: int = 503) -> None:
        self.plan.extend([status] * times)

    def members(self, network_id: str) -> set[str]:
        with self._lock:
            return set(self.audiences.get(network_id, set()))

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        with self._lock:
            match = _PATH.match(path)
            request = {"path": path, "headers": headers, "json": json.loads(body or b"{}")}
            self.requests.append(request)
            if self.plan:
                return self.plan.popleft(), {"error": "planned"}
            if match is None:
                return 404, {"error": "no such route"}
            payload = request["json"]
            batch_id = payload.get("batch_id")
            if not batch_id or headers.get("idempotency-key") != batch_id:
                return 400, {"error": "batch_id and Idempotency-Key must match"}
            if batch_id in self.applied:
                return 200, {"duplicate": True}
            audience = self.audiences.setdefault(match.group(1), set())
            for member in payload.get("members", []):
                key = member.get("em") or member.get("ph")
                if not isinstance(key, str) or not re.fullmatch(r"[0-9a-f]{64}", key):
                    return 400, {"error": "members must be SHA-256 hex"}
                if match.group(2) == "add":
                    audience.add(key)
                else:
                    audience.discard(key)
            self.applied.append(batch_id)
            return 200, {"duplicate": False, "size": len(audience)}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        network = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload = network._answer(self.path, headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
