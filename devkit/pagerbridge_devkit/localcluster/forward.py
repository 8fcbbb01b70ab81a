"""``python -m pagerbridge_devkit.localcluster.forward LISTEN TARGET``: a plain TCP forwarder.

The real node's pods reach the API server at the ``kubernetes`` Service, whose endpoint
is the bridge's gateway address (``node.GATEWAY``, the API server's advertise address);
the API server itself listens on loopback only. This forwards connections from
``LISTEN`` (``host:port``) to ``TARGET`` byte for byte (TLS passes through untouched).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, *listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(
            "usage: python -m pagerbridge_devkit.localcluster.forward LISTEN TARGET",
            file=sys.stderr,
        )
        return 2
    asyncio.run(serve(_address(argv[0]), _address(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
