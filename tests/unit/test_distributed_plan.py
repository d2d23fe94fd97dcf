"""The multi-host launch plan, settings and host resolution: pure functions, compared as dicts."""

from __future__ import annotations

import socket

import pytest

from sagemaker_cv.contract.config import data_shard
from sagemaker_cv.contract.errors import AlgorithmError, ClientError
from sagemaker_cv.distributed import plan as d

IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_scheduler_role_env():
    assert d.dmlc_env("scheduler", IPS, 8000) == {
        "DMLC_ROLE": "scheduler",
        "DMLC_PS_ROOT_URI": "10.0.0.1",
        "DMLC_PS_ROOT_PORT": "8000",
        "DMLC_NUM_SERVER": "3",
        "DMLC_NUM_WORKER": "3",
    }


def test_server_binds_the_resourceconfig_interface():
    assert d.dmlc_env("server", IPS, 9000, interface="eth1", node_host="10.0.0.2") == {
        "DMLC_ROLE": "server",
        "DMLC_PS_ROOT_URI": "10.0.0.1",
        "DMLC_PS_ROOT_PORT": "9000",
        "DMLC_NUM_SERVER": "3",
        "DMLC_NUM_WORKER": "3",
        "DMLC_INTERFACE": "eth1",
    }


def test_worker_without_interface_binds_its_own_address():
    assert d.dmlc_env("worker", IPS[:2], 8000, node_host="10.0.0.2", verbose=1) == {
        "DMLC_ROLE": "worker",
        "DMLC_PS_ROOT_URI": "10.0.0.1",
        "DMLC_PS_ROOT_PORT": "8000",
        "DMLC_NUM_SERVER": "2",
        "DMLC_NUM_WORKER": "2",
        "DMLC_NODE_HOST": "10.0.0.2",
        "PS_VERBOSE": "1",
    }


@pytest.mark.parametrize(
    "role, ips, port, kwargs, message",
    [
        ("client", IPS, 8000, {}, "role 'client': expected one of scheduler, server, worker"),
        ("worker", [], 8000, {"node_host": "x"}, "hosts_ips is empty"),
        ("worker", IPS, 70000, {"node_host": "x"}, "port=70000: expected 1..65535"),
        ("server", IPS, 8000, {}, "role 'server' needs an interface or this host's address"),
    ],
)
def test_dmlc_env_rejects(role, ips, port, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        d.dmlc_env(role, ips, port, **kwargs)


def test_roles_per_host():
    hosts = ["algo-1", "algo-2", "algo-3"]
    assert d.roles_for("algo-1", hosts) == ("scheduler", "server", "worker")
    assert d.roles_for("algo-3", hosts) == ("server", "worker")
    assert d.scheduler_host(hosts) == "algo-1"
    with pytest.raises(ValueError, match="host 'algo-9' is not one of hosts"):
        d.roles_for("algo-9", hosts)


def test_data_shard_splits_replicated_data_and_reads_sharded_data_whole():
    assert data_shard("FullyReplicated", 3, 2) == (3, 2)
    assert data_shard("ShardedByS3Key", 3, 2) == (1, 0)
    assert data_shard("FullyReplicated", 1, 0) == (1, 0)


def test_settings_defaults_and_overrides():
    assert d.settings_from_env({}) == d.Settings()
    assert d.Settings().control_port == 8001
    settings = d.settings_from_env(
        {
            d.PS_PORT_ENV: "9100",
            d.RESOLVE_TIMEOUT_ENV: "2.5",
            d.PEER_TIMEOUT_ENV: "10",
            d.HOST_MAP_ENV: "algo-1=127.0.0.1, algo-2=127.0.0.2",
        }
    )
    assert (settings.ps_port, settings.control_port) == (9100, 9101)
    assert (settings.resolve_timeout, settings.peer_timeout) == (2.5, 10.0)
    assert settings.host_map == {"algo-1": "127.0.0.1", "algo-2": "127.0.0.2"}


def test_settings_problems_are_collected():
    with pytest.raises(ClientError) as err:
        d.settings_from_env(
            {
                d.PS_PORT_ENV: "eight",
                d.STALL_TIMEOUT_ENV: "-1",
                d.HOST_MAP_ENV: "algo-1:127.0.0.1,algo-2=localhost",
            }
        )
    assert err.value.problems == [
        "SAGEMAKER_CV_PS_PORT='eight': expected a positive integer",
        "SAGEMAKER_CV_HOST_MAP entry 'algo-1:127.0.0.1': expected host=IPv4 address, e.g. algo-1=127.0.0.1",
        "SAGEMAKER_CV_HOST_MAP entry 'algo-2=localhost': expected host=IPv4 address, e.g. algo-1=127.0.0.1",
        "SAGEMAKER_CV_STALL_TIMEOUT='-1': expected a positive number",
    ]
    with pytest.raises(ClientError, match="must differ from SAGEMAKER_CV_PS_PORT=9000"):
        d.settings_from_env({d.PS_PORT_ENV: "9000", d.CONTROL_PORT_ENV: "9000"})
    with pytest.raises(ClientError, match="SAGEMAKER_CV_PS_PORT=70000: expected a port in 1..65535"):
        d.settings_from_env({d.PS_PORT_ENV: "70000", d.CONTROL_PORT_ENV: "9000"})


def test_backoff_doubles_from_a_tenth_of_a_second_up_to_the_cap():
    delay = d.backoff_delays(first=0.1, cap=1.0)
    assert [delay() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


class FakeDNS:
    """Answers after `failures[host]` failed lookups; advances a fake clock on sleep."""

    def __init__(self, failures: dict[str, int], answers: dict[str, str]):
        self.failures, self.answers, self.now, self.sleeps = dict(failures), answers, 0.0, []

    def lookup(self, host: str) -> str:
        if self.failures.get(host, 0) > 0:
            self.failures[host] -= 1
            raise socket.gaierror(-2, "Name or service not known")
        if host not in self.answers:
            raise socket.gaierror(-2, "Name or service not known")
        return self.answers[host]

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_resolution_retries_with_backoff_until_every_host_answers():
    dns = FakeDNS({"algo-2": 3}, {"algo-1": "10.0.0.1", "algo-2": "10.0.0.2"})
    got = d.resolve_hosts(
        ["algo-1", "algo-2"], timeout=60, lookup=dns.lookup, clock=lambda: dns.now, sleep=dns.sleep
    )
    assert got == {"algo-1": "10.0.0.1", "algo-2": "10.0.0.2"}
    assert dns.sleeps == [0.1, 0.2, 0.4]


def test_host_map_replaces_dns_for_the_hosts_it_names():
    dns = FakeDNS({}, {"algo-2": "10.0.0.2"})
    got = d.resolve_hosts(
        ["algo-1", "algo-2"],
        timeout=1,
        host_map={"algo-1": "127.0.0.1"},
        lookup=dns.lookup,
        clock=lambda: 0.0,
    )
    assert got == {"algo-1": "127.0.0.1", "algo-2": "10.0.0.2"}


def test_resolution_gives_up_at_the_deadline_naming_the_host():
    dns = FakeDNS({}, {"algo-2": "10.0.0.2"})
    with pytest.raises(d.HostResolutionError) as err:
        d.resolve_hosts(
            ["algo-1", "algo-2"], timeout=20, lookup=dns.lookup, clock=lambda: dns.now, sleep=dns.sleep
        )
    assert isinstance(err.value, AlgorithmError)
    assert err.value.host == "algo-1"
    assert str(err.value).startswith("host 'algo-1' did not resolve to an address within 20 s")
    assert sum(dns.sleeps) == pytest.approx(20)  # never sleeps past the deadline
    assert max(dns.sleeps) <= 30


def test_binding_uses_the_named_interface_when_it_has_an_address():
    assert d.choose_binding("eth0", "172.18.0.2", "172.18.0.2") == d.Binding(interface="eth0")
    assert d.choose_binding(None, None, "10.0.0.2") == d.Binding(node_host="10.0.0.2")


def test_binding_falls_back_to_the_hosts_own_address_and_says_why():
    # SDK v3 local mode writes network_interface_name "ethwe"; its containers have eth0 and lo.
    binding = d.choose_binding("ethwe", None, "172.18.0.3")
    assert binding.interface is None and binding.node_host == "172.18.0.3"
    assert binding.note == (
        "network interface 'ethwe' (resourceconfig.json network_interface_name) has no IPv4 address on this "
        "host; binding the parameter server's ports to this host's own address 172.18.0.3 instead"
    )
    env = d.dmlc_env("server", IPS, 8000, interface=binding.interface, node_host=binding.node_host)
    assert env["DMLC_NODE_HOST"] == "172.18.0.3" and "DMLC_INTERFACE" not in env
