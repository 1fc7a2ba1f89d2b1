#!/usr/bin/env python3
"""A round-robin TCP proxy on loopback: each new connection goes to the next backend.

    rr-proxy.py LISTEN_PORT BACKEND_PORT...

Prints "ready" once listening; counts connections per backend on stderr at exit. Used by
.ci/replicas to put two replicas of an example behind one issuer. Loopback only.
"""
import asyncio
import itertools
import signal
import sys

listen, backends = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
turn = itertools.cycle(range(len(backends)))
counts = [0] * len(backends)


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer):
    i = next(turn)
    counts[i] += 1
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", backends[i])
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()
    print(" ".join(f"{p}:{n}" for p, n in zip(backends, counts)), file=sys.stderr, flush=True)


asyncio.run(main())
