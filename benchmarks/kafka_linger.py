"""What ``linger_ms`` costs a record at a low rate (issue 19): two aiokafka producers on
one fresh tansu broker, ``linger_ms`` 0 and 1 (acks=1, arbtui's ``max_batch_size``),
alternating one 600-byte record a millisecond (each producer one every 2 ms, as a feed
at ~1 k quotes/s), send -> acknowledged per record. Interleaved in one process, so the
machine's load falls on both alike.

    python -m benchmarks.kafka_linger [--records 3000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import numpy as np

from benchmarks import broker as brokermod


async def run(records: int) -> dict:
    from aiokafka import AIOKafkaProducer

    from arbtui.config import KafkaConfig

    lat: dict[int, list[int]] = {0: [], 1: []}
    async with brokermod.fresh_broker() as b:
        await brokermod.create_topics(b, {"linger": 12})
        topic = b.topic("linger")
        ps = {}
        for linger in (0, 1):
            p = AIOKafkaProducer(bootstrap_servers=b.bootstrap, acks=1, linger_ms=linger,
                                 max_batch_size=KafkaConfig().max_batch_size)
            await p.start()
            ps[linger] = p
        try:
            for p in ps.values():
                await p.send_and_wait(topic, b"x" * 600, partition=0)

            def done(linger: int, t0: int):
                return lambda _f: lat[linger].append(time.perf_counter_ns() - t0)

            for i in range(records):
                linger = i % 2
                t0 = time.perf_counter_ns()
                fut = await ps[linger].send(topic, b"x" * 600, partition=i % 12)
                fut.add_done_callback(done(linger, t0))
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.5)
        finally:
            for p in ps.values():
                await p.stop()
    out: dict = {"load": round(os.getloadavg()[0], 2)}
    for linger in (0, 1):
        a = np.asarray(lat[linger][50:]) / 1e6  # after a warm-up
        out[f"linger_ms={linger} ack p50/p90/p99 ms"] = [round(float(x), 2)
                                                      for x in np.percentile(a, [50, 90, 99])]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    why = brokermod.available()
    if why:
        print(f"Skipped: {why}")
        return
    for _ in range(a.runs):
        print(json.dumps(asyncio.run(run(a.records))))


if __name__ == "__main__":
    main()
