"""A spec's URLs against the admin's egress policy, before anything is called or compiled.

Every URL an integration names is checked: the PagerDuty REST and Events bases and the
BigPanda base, explicit or the region defaults. The operator calls two of them itself
(through the guarded transport of :mod:`pagerbridge.clients.guard`, which checks again at
connect time); the relay calls all three with the Secrets mounted in its pod, so a URL
outside the policy is never compiled into a RelayConfig either. A refusal is
``URLNotAllowed`` on the status, whose message says which rule the URL broke and nothing
about what answers there.
"""

from __future__ import annotations

from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.contract import bigpanda_api_url, pagerduty_api_url, pagerduty_events_url
from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.errors import EgressRefused


def spec_urls(spec: PagerDutyIntegrationSpec) -> list[tuple[str, str]]:
    """(field, effective URL) of every external base URL the spec makes us or the relay call."""
    return [
        ("spec.pagerDuty.apiUrl", pagerduty_api_url(spec.pager_duty)),
        ("spec.pagerDuty.eventsUrl", pagerduty_events_url(spec.pager_duty)),
        ("spec.bigPanda.apiUrl", bigpanda_api_url(spec.big_panda)),
    ]


def check_spec(spec: PagerDutyIntegrationSpec, policy: EgressPolicy) -> None:
    """Raise :class:`~pagerbridge.clients.errors.EgressRefused` for the first refused URL,
    its message naming the spec field."""
    for field, url in spec_urls(spec):
        try:
            policy.check_url(url)
        except EgressRefused as exc:
            raise EgressRefused(f"{field}: {exc}") from None
