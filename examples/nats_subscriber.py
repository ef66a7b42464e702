"""A Puskesos feed read with plain nats-py: python nats_subscriber.py CREDENTIALS.json [COUNT]

Prints one JSON line per event, in order, and acknowledges it after that. A repeat (a replay, or a
redelivery after a crash) has an event id already seen: it is skipped. Stops after COUNT events.
"""
import asyncio
import json
import sys
from pathlib import Path

import nats
from nats.js.api import ConsumerConfig


async def main(creds: dict, count: int) -> None:
    nc = await nats.connect(creds["nats_url"].split(","), user=creds["user"], password=creds["password"],
                            inbox_prefix=creds["inbox_prefix"])  # the only inbox its account may use
    js, name, stream = nc.jetstream(), creds["consumer"], creds["stream"]
    await js.add_consumer(stream, ConsumerConfig(name=name, durable_name=name, filter_subject=creds["filter_subject"]))
    feed, seen = await js.pull_subscribe_bind(name, stream), set()
    while len(seen) < count:
        try:
            msgs = await feed.fetch(100, timeout=5)
        except nats.errors.TimeoutError:
            continue
        for msg in msgs:
            if msg.headers["Puskesos-Event-Id"] not in seen:
                seen.add(msg.headers["Puskesos-Event-Id"])
                print(json.dumps({"seq": int(msg.headers["Puskesos-Source-Seq"]), "event": json.loads(msg.data)}),
                      flush=True)
            await msg.ack()
    await nc.drain()


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text()), int(sys.argv[2]) if len(sys.argv) > 2 else sys.maxsize))
