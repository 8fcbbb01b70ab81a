"""The relay's inbound webhooks: BigPanda's and PagerDuty's endpoints, their shared
request handling and PagerDuty's signatures. They only enqueue into the outbox.

Above outbox, config and incidents; never imports outbound.
"""
