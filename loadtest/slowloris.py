#!/usr/bin/env python3
"""Hostile-client load against a server on 127.0.0.1, bounded in time, stopping by itself.

  slowloris.py HOST:PORT --rate 200 --seconds 60
      opens RATE new connections a second for SECONDS, each sending a request line and then one
      header byte a second, never finishing its headers; reports how many the server closed and
      after how long.
  slowloris.py HOST:PORT --burst 5000
      opens BURST connections at once, sends one request on each, and reports how long until
      every one was answered.
"""
import argparse
import asyncio
import statistics
import sys
import time


async def slow_client(host, port, hold, closed_after):
    start = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return
    try:
        writer.write(b"GET /plaintext HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
        await writer.drain()
        deadline = start + hold
        while time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(reader.read(1024), timeout=1.0)
                if not data or data.startswith(b"HTTP/1.1 408"):
                    closed_after.append(time.monotonic() - start)
                    return
            except asyncio.TimeoutError:
                pass
            writer.write(b"a")
            await writer.drain()
    except (ConnectionError, OSError):
        closed_after.append(time.monotonic() - start)
    finally:
        writer.close()


async def slowloris(host, port, rate, seconds, hold):
    closed_after = []
    tasks = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tick = time.monotonic()
        for _ in range(rate):
            tasks.append(asyncio.create_task(slow_client(host, port, hold, closed_after)))
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    await asyncio.gather(*tasks)
    n = len(tasks)
    print(f"slow connections opened: {n}, closed by the server: {len(closed_after)}")
    if closed_after:
        print(
            f"closed after: median {statistics.median(closed_after):.2f} s, "
            f"max {max(closed_after):.2f} s"
        )


async def burst(host, port, count):
    async def one():
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /plaintext HTTP/1.1\r\nHost: burst\r\n\r\n")
        await writer.drain()
        line = await reader.readline()
        writer.close()
        return line.startswith(b"HTTP/1.1 200")

    start = time.monotonic()
    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    took = time.monotonic() - start
    ok = sum(1 for r in results if r is True)
    print(f"burst: {count} connections, {ok} answered 200, all within {took:.3f} s")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("target")
    p.add_argument("--rate", type=int, default=200)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--hold", type=float, default=30.0, help="give up on a slow connection after this")
    p.add_argument("--burst", type=int)
    a = p.parse_args()
    host, port = a.target.rsplit(":", 1)
    if not host.startswith("127."):
        sys.exit("targets 127.0.0.0/8 only")
    if a.burst:
        asyncio.run(burst(host, int(port), a.burst))
    else:
        asyncio.run(slowloris(host, int(port), a.rate, a.seconds, a.hold))


if __name__ == "__main__":
    main()
