"""The supplier simulator as a real process on a free port."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from devtools.devstack import free_port
from tests.processes import BASE_DIR, wait_for


class SimulatorProcess:
    def __init__(self, *, port: int, options: dict, log_path, command: list[str] | None = None, env=None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        argv = [*(command or [sys.executable, "-m", "sync.simulator"]), "--port", str(port)]
        for name, value in options.items():
            flag = f"--{name.replace('_', '-')}"
            if isinstance(value, bool):
                argv += [flag] if value else []
            else:
                argv += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(argv, cwd=BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT)
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

    def reset(self, *, config: bool = False) -> dict:
        return self._call("POST", "/_sim/reset", {"config": config})

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it will not go; the exit code."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def supplier_simulator(tmp_path):
    """Start simulators as processes on free ports; each is stopped after the test.

    ``sim = supplier_simulator(size=500, rate_limit=0, fail_pages={"7": 1000})`` takes the
    command-line options as keywords; then ``sim.url``, ``sim.configure(**options)``,
    ``sim.stats()``, ``sim.reset(config=False)``.
    """
    started: list[SimulatorProcess] = []

    def _start(*, command: list[str] | None = None, env: dict | None = None, **options) -> SimulatorProcess:
        simulator = SimulatorProcess(port=free_port(), options=options, log_path=tmp_path / f"sim{len(started)}.log",
                                     command=command, env=env)  # fmt: skip
        started.append(simulator)
        return simulator

    yield _start
    for simulator in started:
        if simulator.process.poll() is None:
            simulator.stop()
