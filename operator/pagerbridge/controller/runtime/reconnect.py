"""How kopf's watches come back after the API server was away (a restart, an upgrade, a
control-plane failover): within a fixed bound, and never not at all.

kopf retries a failed API request with ``settings.networking.error_backoffs``, by default
1, 1, 2, 3, 5, 8, 13, 21 s, and its watch streams reconnect through the same retries. Two
things follow for an operator whose API server restarts (issue 23, measured on a real
kube-apiserver):

- **The backoff grows while the server is down.** A restarting server answers 503 ("the
  request has been made before all known HTTP paths have been installed") and 429
  ("storage is (re)initializing") before it serves again, and every such answer is one
  more step of the series: a watch came back 5 s after the server served, and under load
  (a slower start, more failed steps) up to 21 s after. Changes made meanwhile stay unseen.
- **An exhausted series kills the watch for good.** When the last retry still gets a 5xx
  or 403, or any try gets a 404 (a custom resource kind not yet served while the server
  starts), kopf's watcher task ends with the error, and nothing restarts it: that kind is
  never watched again until the process restarts.

So the operator gives kopf an endless series capped at ``cap`` seconds
(:class:`ReconnectBackoff`): a retryable failure never escalates, and a watch is back at
most ``cap`` seconds after the server answers again. And kopf's session turns a 404 to a
GET (kopf only GETs to list and watch the kinds it serves) into a connection error
(:func:`missing_kind_as_disconnect`), which kopf retries like any other disconnect, so a
kind that is briefly not served (server start, CRD re-install) comes back too.
"""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp

FIRST_DELAY = 0.5  # seconds: the first retry of a failed request


class ReconnectBackoff:
    """``FIRST_DELAY``, doubling, at most ``cap`` seconds, forever.

    Iterable but deliberately not ``Sized``: kopf counts a sized series and escalates once
    it is used up; an unsized one it retries without end (see kopf's ``api.request``).
    Each request iterates afresh."""

    def __init__(self, cap: float) -> None:
        if cap <= 0:
            raise ValueError("the reconnect cap must be positive")
        self.cap = cap

    def __iter__(self) -> Iterator[float]:
        delay = min(FIRST_DELAY, self.cap)
        while True:
            yield delay
            delay = min(self.cap, delay * 2)


class KindNotServed(aiohttp.ClientConnectionError):
    """The API server answered 404 to a list or watch: the kind is not served right now."""


async def missing_kind_as_disconnect(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """A client middleware for kopf's session: a 404 to a GET becomes :class:`KindNotServed`."""
    response = await handler(request)
    if response.status != 404 or request.method != "GET":
        return response
    response.release()
    raise KindNotServed(f"GET {request.url.path}: 404, the kind is not served (yet); retrying")
