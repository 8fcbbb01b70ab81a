"""Delivery out of the outbox: the dispatcher, its retry decisions, the PagerDuty and
BigPanda job handlers, the HTTP client pool, the upstream rate limits and the crash points
tests kill the relay at.

Layer (pyproject's "Relay layers" contract): below inbound; may import outbox, config,
incidents and the shared modules; never inbound, admin, server or app.
"""
