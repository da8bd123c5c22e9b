"""The supplier simulator as a real process on a free port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request

import pytest

from tests.processes import BASE_DIR, wait_for


class SimulatorProcess:
    def __init__(self, *, port: int, options: dict, log_path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "sync.simulator", "--port", str(port)]
        for name, value in options.items():
            argv += [f"--{name.replace('_', '-')}", str(value)]
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(argv, cwd=BASE_DIR, stdout=self._log, stderr=subprocess.STDOUT)
        wait_for(self._answers, timeout=20, message="the supplier simulator to answer")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"simulator exited with {self.process.returncode}")
        try:
            self.stats()
            return True
        except OSError:
            return False

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def configure(self, **options) -> dict:
        return self._call("POST", "/_sim/config", options)

    def stats(self) -> dict:
        return self._call("GET", "/_sim/stats")

    def reset(self) -> dict:
        return self._call("POST", "/_sim/reset", {})

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def supplier_simulator(tmp_path):
    """Start simulators: ``sim = supplier_simulator(size=500, rate_limit=0)``; stopped after the test."""
    started: list[SimulatorProcess] = []

    def _start(**options) -> SimulatorProcess:
        simulator = SimulatorProcess(port=_free_port(), options=options, log_path=tmp_path / f"sim{len(started)}.log")
        started.append(simulator)
        return simulator

    yield _start
    for simulator in started:
        simulator.stop()
