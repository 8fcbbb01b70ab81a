"""A hostile upstream: an HTTP server that answers the operator's PagerDuty and BigPanda
calls the way an attacker holding one namespace would make it answer.

Run it with :class:`~pagerbridge_devkit.sandbox.server.BackgroundServer` on 127.0.0.1 and
point a CR's ``apiUrl`` at it. Each :class:`Mode` is one attack of issue 18:

- ``ENDLESS``: every listing page is full and says ``more: true``, forever;
- ``HUGE``: a 200 whose body never ends (streamed megabytes of JSON);
- ``DRIBBLE``: a 200 that sends one byte every ``dribble_interval`` seconds (each read
  is quick, the answer never completes);
- ``MALFORMED``: valid JSON of the wrong shape (no ``webhook_subscription`` key);
- ``GZIP``: claims a gzip body although the client asked for identity.

Every request is recorded (method, path, query, whether an ``Authorization`` header came:
never its value), so tests can prove a refused URL was never contacted.

:class:`HostileEventsApi` does the same to the relay's deliveries (issue 25): an Events
API that answers chosen events with a 202 that then drips, with nothing at all, or with a
gzip bomb, and the other events normally.
"""

from __future__ import annotations

import asyncio
import json
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.types import Receive, Scope, Send

PAGE_ITEMS = 100


class Mode(StrEnum):
    ENDLESS = "endless"
    HUGE = "huge"
    DRIBBLE = "dribble"
    MALFORMED = "malformed"
    GZIP = "gzip"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    authorized: bool


class HostileUpstream:
    """ASGI app; ``mode`` may be changed while it runs."""

    def __init__(self, mode: Mode, dribble_interval: float = 0.2) -> None:
        self.mode = mode
        self.dribble_interval = dribble_interval
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self.bytes_sent = 0

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v for k, v in scope["headers"]}
        with self._lock:
            self._seen.append(
                Seen(
                    scope["method"],
                    scope["path"],
                    scope["query_string"].decode(),
                    "authorization" in headers,
                )
            )
        if self.mode is Mode.ENDLESS:
            await self._endless(scope, send)
        elif self.mode is Mode.HUGE:
            await self._stream(receive, send)
        elif self.mode is Mode.DRIBBLE:
            await self._dribble(receive, send)
        elif self.mode is Mode.MALFORMED:
            await self._body(send, 200, {"something_else": {"id": "PX"}})
        else:
            await self._body(send, 200, {"webhook_subscriptions": []}, gzip=True)

    async def _start(self, send: Send, status: int, extra: list[tuple[bytes, bytes]]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra],
            }
        )

    async def _chunk(self, send: Send, data: bytes, more: bool = True) -> None:
        self.bytes_sent += len(data)
        await send({"type": "http.response.body", "body": data, "more_body": more})

    async def _body(self, send: Send, status: int, payload: object, gzip: bool = False) -> None:
        data = json.dumps(payload).encode()
        extra = [(b"content-encoding", b"gzip")] if gzip else []
        await self._start(send, status, [(b"content-length", str(len(data)).encode()), *extra])
        await self._chunk(send, data, more=False)

    async def _endless(self, scope: Scope, send: Send) -> None:
        if scope["method"] != "GET" or scope["path"] != "/webhook_subscriptions":
            await self._body(send, 404, {"error": {"message": "Not Found"}})
            return
        query = dict(
            part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part
        )
        offset = int(query.get("offset", "0"))
        items = [
            {
                "id": f"P{offset + i:08d}",
                "type": "webhook_subscription",
                "delivery_method": {"type": "http_delivery_method", "url": "https://x.invalid"},
                "description": "y" * 2000,
            }
            for i in range(PAGE_ITEMS)
        ]
        await self._body(send, 200, {"webhook_subscriptions": items, "more": True})

    @staticmethod
    def _hang_up(receive: Receive) -> asyncio.Task[None]:
        """A task that ends when the client disconnects."""

        async def wait() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        return asyncio.create_task(wait())

    async def _stream(self, receive: Receive, send: Send) -> None:
        gone = self._hang_up(receive)
        await self._start(send, 200, [])
        await self._chunk(send, b'{"webhook_subscriptions": [')
        chunk = b'"' + b"x" * 65536 + b'",'
        while not gone.done():  # until the client hangs up
            await self._chunk(send, chunk)
            await asyncio.sleep(0.001)

    async def _dribble(self, receive: Receive, send: Send) -> None:
        gone = self._hang_up(receive)
        await self._start(send, 200, [])
        while not gone.done():
            await self._chunk(send, b" ")
            await asyncio.sleep(self.dribble_interval)


class EventsAttack(StrEnum):
    """What :class:`HostileEventsApi` does to the events it is hostile to (issue 25)."""

    DRIP = "drip"  # 202 and its headers, then one byte every ``drip_interval`` seconds
    HANG = "hang"  # nothing at all: no status, no headers, until the client hangs up
    GZIP_BOMB = "gzip-bomb"  # 202, Content-Encoding: gzip, 510 KB inflating to 512 MiB


def gzip_bomb(inflated: int = 512 << 20) -> bytes:
    """A gzip body of ``inflated`` zero bytes (512 MiB: about 510 KB), built a MiB at a
    time so making it costs no more memory than the result."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(inflated >> 20)]
    parts.append(packer.flush())
    return b"".join(parts)


class HostileEventsApi:
    """An Events API v2 (``POST /v2/enqueue``) that attacks the events ``hostile`` picks
    (by their JSON body) and accepts the others at once with a normal 202.

    ``accepted`` lists the ``dedup_key`` of every event answered normally, ``attacked``
    those of every event attacked; ``in_attack`` counts the attacks in progress now (a
    client still connected), ``cut`` the attacks the client hung up on.
    """

    def __init__(
        self,
        attack: EventsAttack,
        hostile: Callable[[dict[str, Any]], bool],
        drip_interval: float = 5.0,
    ) -> None:
        self.attack = attack
        self.hostile = hostile
        self.drip_interval = drip_interval
        self._lock = threading.Lock()
        self.accepted: list[str] = []
        self.attacked: list[str] = []
        self.in_attack = 0
        self.cut = 0
        self._bomb = gzip_bomb() if attack is EventsAttack.GZIP_BOMB else b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        data = b""
        while True:
            message = await receive()
            data += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            event = json.loads(data)
        except ValueError:
            event = {}
        dedup = str(event.get("dedup_key", "")) if isinstance(event, dict) else ""
        if not isinstance(event, dict) or not self.hostile(event):
            with self._lock:
                self.accepted.append(dedup)
            reply = json.dumps({"status": "success", "dedup_key": dedup}).encode()
            await _answer(send, 202, reply, [])
            return
        with self._lock:
            self.attacked.append(dedup)
            self.in_attack += 1
        try:
            if self.attack is EventsAttack.GZIP_BOMB:
                await _answer(send, 202, self._bomb, [(b"content-encoding", b"gzip")])
                return
            gone = HostileUpstream._hang_up(receive)
            if self.attack is EventsAttack.DRIP:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 202,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                while not gone.done():
                    await send({"type": "http.response.body", "body": b" ", "more_body": True})
                    await asyncio.wait([gone], timeout=self.drip_interval)
            else:
                await gone
            with self._lock:
                self.cut += 1
        finally:
            with self._lock:
                self.in_attack -= 1


async def _answer(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


__all__ = [
    "PAGE_ITEMS",
    "EventsAttack",
    "HostileEventsApi",
    "HostileUpstream",
    "Mode",
    "Seen",
    "gzip_bomb",
]
