"""Runs ``nudge serve`` in a child process and stops it again: what the demo and tests use."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from features import Unavailable
from serving.json_client import JsonClient
from serving.settings import Settings

__all__ = ["ApiProcess", "free_port", "port_in_use", "stop_process"]


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Ask a server process to stop (it publishes what it learned), then insist."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class ApiProcess:
    """``with ApiProcess(settings) as api: api.client.post(...)``; the server log goes to a file."""

    def __init__(self, settings: Settings, *, startup_timeout_s: float = 90.0) -> None:
        self.settings = settings
        self.startup_timeout_s = startup_timeout_s
        self.base_url = f"http://{settings.host}:{settings.port}"
        self.log_path: Path = settings.state_dir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.client = JsonClient(self.base_url)

    def __enter__(self) -> ApiProcess:
        self.start()
        return self

    def start(self) -> None:
        """Start the server and wait until every one of its workers answers /healthz."""
        if port_in_use(self.settings.host, self.settings.port):
            raise Unavailable(
                f"port {self.settings.port} on {self.settings.host} is already in use; "
                "choose another with --port or NUDGE_PORT"
            )
        # Every setting travels as a NUDGE_* variable, so the child runs with exactly these.
        command = [sys.executable, "-m", "serving.cli", "serve"]
        env = {**os.environ, **self.settings.as_env()}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        # With several workers the first one up answers for all (the others do not
        # accept yet), so "healthy" means every worker has answered. A keep-alive
        # connection stays with the worker that accepted it: each probe is a new one.
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        answered: set[str] = set()
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise Unavailable(
                    f"the API exited with code {self._process.returncode} while starting; "
                    f"see {self.log_path}"
                )
            try:
                response = self.client.get("/healthz")
                if response.status == 200:
                    answered.add(str(response.json()["worker_id"]))
                    if len(answered) >= self.settings.workers:
                        return
            except OSError:
                pass
            self.client.close()
            time.sleep(0.05 if answered else 0.2)
        self.stop()
        raise Unavailable(
            f"{len(answered)} of the API's {self.settings.workers} workers answered /healthz "
            f"within {self.startup_timeout_s:.0f} s; see {self.log_path}"
        )

    def health(self) -> dict[str, object]:
        payload: dict[str, object] = self.client.get("/healthz").json()
        return payload

    def stop(self) -> None:
        self.client.close()
        if self._process is not None:
            stop_process(self._process)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
