"""Pure incident logic: parsing BigPanda bodies, routing (key overrides), translation to
PagerDuty events, echo rules, identifiers and PagerDuty's limits.

No I/O (an import-linter contract says so); the bottom of the relay.
"""
