"""The operator-killer: force-deletes an operator pod at random moments, as a node crash or
an eviction would, while the tests run; the Deployment starts a new one."""

from __future__ import annotations

import random
import subprocess
import threading

from e2e.harness import OPERATOR_NAMESPACE, InstalledOperator


class OperatorKiller:
    """Deletes one operator pod every `interval` (min, max) seconds, on its own thread."""

    def __init__(self, control_plane, interval: tuple[float, float], seed: int) -> None:
        low, high = interval
        if not 0 < low <= high:
            raise ValueError(f"interval must be 0 < min <= max seconds, got {interval!r}")
        self.interval = interval
        self.operator = InstalledOperator(control_plane)
        self.rng = random.Random(seed)
        self.deleted: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="operator-killer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=240)

    def _run(self) -> None:
        while not self.stopping.wait(self.rng.uniform(*self.interval)):
            try:
                self.kill_one()
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                continue  # the API server was busy: try again at the next moment

    def kill_one(self) -> None:
        """Delete one running operator pod (none when the Deployment is scaled to zero)."""
        pods = [pod["metadata"]["name"] for pod in self.operator.pods()]
        if not pods:
            return
        name = self.rng.choice(sorted(pods))
        deleted = self.operator.control_plane.kubectl(
            "-n", OPERATOR_NAMESPACE, "delete", "pod", name, "--grace-period=0", "--force", "--wait=false",
            check=False, timeout=60)
        if deleted.returncode == 0:
            self.deleted.append(name)
