"""Day-2 logic behind the command line: doctor, the outbox report, reaching a relay,
the synthetic incident, the webhook set-up text.

Above the controller (it may read the controller's names and render code) and below
:mod:`pagerbridge.cli`; never imported by the operator or the relay.
"""
