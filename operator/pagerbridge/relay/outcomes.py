"""The relay's closed vocabularies: the label values its metrics and logs may carry.

Each is written once, here, as an enum: the delivery code names a member, the metrics
create every series of it at 0 at start (so ``increase()`` sees the first occurrence too),
and a misspelt label is a type error instead of a silent new series. Dependency-free, so
every layer of the relay may import it.
"""

from __future__ import annotations

import enum


class DeliveryOutcome(enum.StrEnum):
    """``outcome`` label of ``pagerbridge_relay_deliveries_total``: how one attempt ended."""

    # finished (the job is deleted)
    DELIVERED = "delivered"
    IGNORED = "ignored"  # not PagerBridge's incident, or BigPanda not configured
    ECHO = "echo"  # the relay itself made the change
    SKIPPED = "skipped"  # the feature is off (notes without a REST key)
    SKIPPED_LATE = "skipped_late"  # late trigger, resolved in BigPanda meanwhile
    SKIPPED_NO_INCIDENT = "skipped_no_incident"  # its PagerDuty incident never will exist
    # given up (dead-lettered, reason in DeadLetterReason)
    REJECTED = "rejected"
    # retried later
    RATE_LIMITED = "rate_limited"
    UNAUTHORIZED = "unauthorized"
    NOT_READY = "not_ready"
    TRANSIENT = "transient"
    ERROR = "error"


class DeadLetterReason(enum.StrEnum):
    """``reason`` label of ``pagerbridge_relay_dead_letters_total``: why a job was given up."""

    REJECTED = "rejected"  # permanent 4xx (or any error whose retry class is NEVER)
    POISON = "poison"  # unexpected errors past the attempt bound
    EXPIRED = "expired"  # past the job's maximum age
    NOT_READY = "not_ready"  # what it depends on never appeared
    UNKNOWN_KIND = "unknown_kind"  # no handler for the job's kind
    CRASH_LOOP = "crash_loop"  # the process died during each attempt, up to the poison bound


class Upstream(enum.StrEnum):
    """The services the relay calls, as /readyz and ``upstream_unauthorized`` name them."""

    PAGERDUTY_EVENTS = "pagerduty_events"
    PAGERDUTY_REST = "pagerduty_rest"
    BIGPANDA = "bigpanda"


class LinkKind(enum.StrEnum):
    """``kind`` label of ``pagerbridge_relay_links_dropped_total``: what was dropped."""

    LINK = "link"  # a links[] entry
    IMAGE = "image"  # an images[] entry (its src)
    IMAGE_HREF = "image_href"  # an image's click-through; the image is sent without it


class LinkDropReason(enum.StrEnum):
    """``reason`` label of ``pagerbridge_relay_links_dropped_total``: why a link or image was
    left out of a trigger (the trigger itself is always sent)."""

    MISSING_TAG = "missing_tag"  # its tag, or a template's placeholder tag, absent or blank
    SCHEME = "scheme"  # not http(s); an image src not https
    UNPARSABLE = "unparsable"  # no host, a bad port or IPv6 literal, not a URL at all
    TOO_LONG = "too_long"  # over pagerbridge.api.links.MAX_URL
    CREDENTIALS = "credentials"  # user info (user:password@) in the URL
    CONTROL_CHARACTERS = "control_characters"  # whitespace, control or format characters
    TOO_MANY = "too_many"  # over the per-event count (MAX_EVENT_LINKS / MAX_EVENT_IMAGES)
