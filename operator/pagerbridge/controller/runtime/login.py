"""kopf's login, fed from the same :class:`~pagerbridge.clients.kubeconfig.Credentials` as
the operator's own Kubernetes client: one authentication story per process.

kopf talks to the API through aiohttp; it gets a session built from our credentials: the
same TLS context (CA, client certificate, ``tls-server-name``), the same ``proxy-url``, and a
client middleware that asks the same :class:`~pagerbridge.clients.kube_auth.TokenSource` for
every request's ``Authorization`` (so a rotated token file or an expiring exec credential is
refreshed for kopf's watches exactly as for our calls, and a 401 is retried once with a fresh
token before kopf sees it). Should kopf still get a 401, it calls the login handler again,
which starts from a fresh token. A second middleware keeps a watch alive across a kind that
is briefly not served (see :mod:`.reconnect`); a third counts kopf's requests.
"""

from __future__ import annotations

import aiohttp
import kopf

from pagerbridge.clients.kubeconfig import Credentials
from pagerbridge.controller.metrics import count_api_request
from pagerbridge.controller.runtime.reconnect import missing_kind_as_disconnect


def _auth_middleware(credentials: Credentials) -> aiohttp.ClientMiddlewareType:
    source = credentials.auth
    assert source is not None

    async def authenticate(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        sent = await source.header()
        request.headers["Authorization"] = sent
        response = await handler(request)
        if response.status != 401:
            return response
        source.invalidate()
        fresh = await source.header()
        if fresh == sent:
            return response
        response.release()
        request.headers["Authorization"] = fresh
        return await handler(request)

    return authenticate


async def _count(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """Counts kopf's requests in ``pagerbridge_operator_api_requests_total{client="kopf"}``."""
    count_api_request(
        "kopf",
        request.method,
        request.url.path,
        request.url.query_string,
        request.headers.get("Content-Type", ""),
    )
    return await handler(request)


def kopf_session(credentials: Credentials) -> kopf.AiohttpSession:
    """A kopf login result: an aiohttp session speaking with ``credentials``."""
    if credentials.auth is not None:
        credentials.auth.invalidate()  # a (re-)login starts from a fresh token
    middlewares: tuple[aiohttp.ClientMiddlewareType, ...] = (_count, missing_kind_as_disconnect)
    if credentials.auth is not None:
        middlewares = (*middlewares, _auth_middleware(credentials))
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=credentials.ssl_context),
        proxy=credentials.proxy_url,
        middlewares=middlewares,
    )
    return kopf.AiohttpSession(
        server=credentials.server,
        aiohttp_session=session,
        default_namespace=credentials.default_namespace,
    )
