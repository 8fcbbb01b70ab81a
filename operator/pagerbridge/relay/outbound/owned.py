"""Which PagerDuty incident is the relay's own (issue 27).

The relay sets a BigPanda incident's id as the Events v2 ``dedup_key``; PagerDuty answers an
event with that key only, never with the incident it opened. Any other integration in the
account may use the same key, on another service, before or after ours, so the key alone
does not say which incident is ours. The first time the relay needs our incident (a note, a
webhook about it, the repair sweep) it looks it up through REST and records it in the outbox
(:meth:`~pagerbridge.relay.outbox.port.OutboxMemory.bind_pd_incident`): an incident with the
key, on the routing key's service when the relay knows it (``pagerDuty.serviceId`` for the
default key; an override key's service is not known, only the time then tells), created no
earlier than the first trigger attempt of the incident's current life less
:data:`CLOCK_SKEW`, the earliest of those. From then on notes, resolves and look-ups use
that id only, and a webhook about any other PagerDuty incident changes nothing in BigPanda.
"""

from __future__ import annotations

from pagerbridge.clients.pagerduty_incidents import PagerDutyIncidentsClient, service_of
from pagerbridge.relay.context import RelayContext
from pagerbridge.relay.outbound.dispatcher import spend
from pagerbridge.relay.outbox.port import Job

#: Seconds PagerDuty's clock may run behind ours when it stamps ``created_at``.
CLOCK_SKEW = 60.0


async def bind(
    ctx: RelayContext, job: Job | None, client: PagerDutyIncidentsClient, incident_id: str
) -> str | None:
    """The PagerDuty incident our trigger of ``incident_id`` produced: the recorded one, else
    looked up and recorded; None when PagerDuty has none that is ours (yet)."""
    stored = await ctx.memory.incident(incident_id)
    if stored is not None and stored.pd_incident_id:
        return stored.pd_incident_id
    routing_key = (stored.routing or {}).get("key") if stored is not None else None
    service_id = None if routing_key else ctx.holder.current.config.pager_duty.service_id
    first = await ctx.memory.first_trigger(incident_id)
    if job is not None:
        spend(job, ctx.limiter.rest(ctx.holder.current.secrets.pagerduty_api_token))
    found = await client.find_by_incident_key(
        incident_id, service_id=service_id, since=None if first is None else first - CLOCK_SKEW
    )
    if found is None or not isinstance(found.get("id"), str):
        return None
    pd_id: str = found["id"]
    owner = await ctx.memory.owner_of(pd_id)
    if owner is not None and owner != incident_id:
        return None  # (cannot happen: PagerDuty keys an incident by one dedup_key)
    await ctx.memory.bind_pd_incident(incident_id, pd_id, service_of(found))
    return pd_id
