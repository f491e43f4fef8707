"""A small keep-alive JSON client on the standard library's http.client.

The replay sends tens of thousands of sequential requests; httpx's per-request
overhead (about 2.5 ms here) was most of the replay's time, http.client's is a
fraction of that.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

__all__ = ["JsonClient", "JsonResponse"]


class JsonResponse:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class JsonClient:
    """One persistent connection; reconnects once if the server closed it.

    >>> JsonClient("http://127.0.0.1:8000").host_port
    ('127.0.0.1', 8000)
    """

    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"base_url must be http://host:port, got {base_url!r}")
        self.host_port = (parts.hostname, parts.port or 80)
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            host, port = self.host_port
            self._conn = http.client.HTTPConnection(host, port, timeout=self.timeout_s)
        return self._conn

    def request(self, method: str, path: str, body: Any = None) -> JsonResponse:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if payload is not None else {}
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                return JsonResponse(response.status, response.read())
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str) -> JsonResponse:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> JsonResponse:
        return self.request("POST", path, body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
