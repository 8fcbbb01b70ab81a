"""The Kubernetes operator: kopf handlers that turn PagerBridge custom resources into a
running relay (children rendered by a pure function), its typed status, and the external
objects (PagerDuty webhook subscription, BigPanda Webhook v2 integration).

Its packages are layers, each importing only those below it (an import-linter contract in
``pyproject.toml`` says so): ``runtime`` (kopf) > ``reconcile`` (the loop) > ``steps`` >
``external`` > ``render`` (pure) > ``policy`` | ``state``. The top-level modules here
(errors, names, settings, ownership, events, kube_port, metrics) are shared vocabulary
that any layer may import. Above the controller: ``pagerbridge.ops`` and
``pagerbridge.cli``; below it: ``pagerbridge.clients`` and ``pagerbridge.api``; never
``pagerbridge.relay``.
"""
