"""Pure incident logic: parsing BigPanda bodies, routing (key overrides), translation to
PagerDuty events, echo rules, identifiers and PagerDuty's limits.

No I/O (the "Pure cores" import-linter contract names this package); the bottom layer of
the relay: imports nothing of it but the error vocabulary (relay.errors).
"""
