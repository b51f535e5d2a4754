"""A broken control plane is reported clearly and quickly, not by a hang."""

from __future__ import annotations

import pytest
from e2e.harness import wait_for
from pravah.localcluster import ControlPlane, PlatformError

pytestmark = pytest.mark.platform


@pytest.fixture
def own_control_plane(tmp_path):
    """A separate etcd + kube-apiserver for this test only (the session one stays healthy)."""
    cp = ControlPlane(tmp_path / "cp", controllers=False, scheduler=False)
    try:
        cp.start()
    except PlatformError as e:
        pytest.fail(f"could not start a control plane: {e}", pytrace=False)
    yield cp
    cp.stop()


def test_killing_etcd_fails_readyz_clearly(own_control_plane):
    cp = own_control_plane
    status, _ = cp.readyz()
    assert status == 200
    cp.kill("etcd")

    # The API server notices (its etcd check times out after 2 s); the bound is for a hang.
    wait_for(lambda: cp.readyz()[0] != 200, 120, "/readyz to fail after etcd died", interval=0.5)

    with pytest.raises(PlatformError) as readyz_error:
        cp.wait_ready(timeout=5)
    message = str(readyz_error.value)
    assert "kube-apiserver is not ready" in message
    assert "[-]etcd" in message

    with pytest.raises(PlatformError) as health_error:
        cp.check_healthy(timeout=5)
    assert "etcd is not running" in str(health_error.value)
