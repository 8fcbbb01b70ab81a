"""The relay's inbound webhooks: BigPanda's and PagerDuty's endpoints, their shared
request handling, PagerDuty's signatures and the public port's memory budget. They only
enqueue into the outbox and hand the stored jobs to the dispatcher.

Layer (pyproject's "Relay layers" contract): below the app, admin and server; may import
outbound (the dispatcher), outbox, config, incidents and the shared modules.
"""
