"""The external objects of one integration: the PagerDuty Webhooks v3 subscription and
BigPanda's Webhook v2 integration, through :mod:`pagerbridge.clients`.

Below the steps; may import render, policy and state; never steps, reconcile or runtime.
"""
