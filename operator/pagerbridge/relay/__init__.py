"""The relay: BigPanda webhooks → PagerDuty (Events v2, REST notes) and PagerDuty Webhooks v3
→ BigPanda (Incidents API v2), through a durable outbox (SQLite, or PostgreSQL shared by
active-active replicas: see relay.outbox.port).

Layers, top to bottom (pyproject's "Relay layers" contract): app; admin | server; inbound;
outbound; outbox : config; incidents (pure). context, metrics, health, options, outcomes,
errors, openapi and throttle are shared modules every layer may use.

Run it with ``pagerbridge relay --config FILE``; :func:`pagerbridge.relay.app.create_app`
builds the ASGI application.
"""
