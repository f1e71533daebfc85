"""net.ipv4.tcp_rto_min_us on a kernel without it (before 6.11): the lab sets a locked route rto_min instead
(fixtures/lab.py). Measured on this kernel, which has the sysctl, with its absence simulated: the connection's RTO
and the lab's rto_min_s() are the same either way, and differ from the default's (root: namespaces)."""

from __future__ import annotations

import os

import pytest

from fixtures.lab import RTO_MIN_SYSCTL, Lab
from netns.addresses import IPV4
from netns.namespace import Namespace, SysctlAbsentError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")
RTO_MIN_US = 50_000


@pytest.fixture
def without_the_sysctl(monkeypatch: pytest.MonkeyPatch) -> None:
    real = Namespace.sysctl_set

    def sysctl_set(self: Namespace, name: str, value: str | int) -> None:
        if name == RTO_MIN_SYSCTL:
            raise SysctlAbsentError(name)
        real(self, name, value)

    monkeypatch.setattr(Namespace, "sysctl_set", sysctl_set)


def _measured(sysctls: dict[str, str]) -> tuple[float, float, Lab]:
    """(the client's RTO after one exchange, the lab's rto_min_s("client"), the lab)."""
    lab = Lab(IPV4, sysctls={"client": dict(sysctls), "server": dict(sysctls)})
    try:
        lab.connect()
        lab.client.send(b"x")
        lab.server.recv(1)
        lab.server.send(b"y")
        lab.client.recv(1)
        return lab.client.rto_s(), lab.rto_min_s("client", why="test"), lab
    finally:
        lab.finish(None)


def test_the_route_sets_the_floor_the_sysctl_would(without_the_sysctl: None) -> None:
    rto, rto_min, lab = _measured({RTO_MIN_SYSCTL: str(RTO_MIN_US)})
    assert lab.rto_min_routes == {"client": 0.05, "server": 0.05}
    assert lab.replaced == {RTO_MIN_SYSCTL}
    assert rto_min == 0.05
    assert 0.05 <= rto < 0.1  # the floor plus a veth's few-ms RTT variance; the default floor would give >= 0.2
    assert any("route rto_min lock 50ms" in note for note in lab.evidence.config_notes)


def test_with_the_sysctl_no_route_is_set_and_the_rto_is_the_same() -> None:
    rto, rto_min, lab = _measured({RTO_MIN_SYSCTL: str(RTO_MIN_US)})
    assert lab.rto_min_routes == {} and lab.replaced == set()
    assert rto_min == 0.05
    assert 0.05 <= rto < 0.1


def test_without_either_the_floor_is_the_kernels_default(without_the_sysctl: None) -> None:
    rto, rto_min, lab = _measured({})
    assert lab.rto_min_routes == {}
    assert rto_min == 0.2  # TCP_RTO_MIN: what icsk_rto_min starts from before 6.11 (the sysctl "absent" here)
    assert rto >= 0.2
