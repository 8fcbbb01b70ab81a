"""Delivery out of the outbox: the dispatcher, the PagerDuty and BigPanda job handlers,
the HTTP client pool and the upstream rate limits.

Above outbox, config and incidents; never imports inbound.
"""
