"""A local run listens on loopback only, and Ray's token file is private to its owner.

On main a local ``swarmcast run`` left three Prometheus exporters (which answer anyone,
without authentication) and Ray's gRPC servers listening on every interface, and
``~/.ray/auth_token`` was world-readable. The port test starts a private Ray the way
``swarmcast run`` does, in a subprocess (one Ray per process), and reads every listening
socket of its process tree from /proc.
"""

import stat
import subprocess
import sys
import time

import pytest

from support.processes import descendants, listening_sockets
from swarmcast.pipelines.cluster import session

LOCAL_RUN = """
import sys
import ray
from swarmcast.pipelines.cluster.session import ray_session
with ray_session(None):
    ray.get(ray.remote(lambda: 1).remote())  # a worker is up
    print("ready", flush=True)
    sys.stdin.readline()
"""


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_a_local_run_listens_on_loopback_only():
    proc = subprocess.Popen([sys.executable, "-c", LOCAL_RUN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(5)  # the dashboard agent and the exporters start a little after the first task
        sockets = listening_sockets(descendants(proc.pid))
    finally:
        proc.communicate("\n", timeout=120)
    assert len(sockets) >= 5, sockets  # the scan sees Ray's servers (GCS, raylet, exporters, ...)
    exposed = [s for s in sockets if not s[0].startswith("127.") and s[0] != "::1"]
    assert not exposed, f"listening beyond loopback (address, port, pid): {exposed}"


def test_the_token_file_is_made_private(tmp_path):
    token = tmp_path / ".ray" / "auth_token"
    assert session.private_token_file(tmp_path) is None  # no file: nothing to do
    token.parent.mkdir()
    token.write_text("secret")
    token.chmod(0o644)
    assert session.private_token_file(tmp_path) == token
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and token.read_text() == "secret"


def test_every_swarmcast_session_tightens_the_token_file(ray_session, tmp_path, monkeypatch):
    token = tmp_path / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("secret")
    token.chmod(0o644)
    monkeypatch.setenv("HOME", str(tmp_path))
    with session.ray_session(None):  # the tests' running Ray: used as it is
        pass
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
