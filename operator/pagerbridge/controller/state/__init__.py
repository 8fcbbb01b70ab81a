"""What the operator observes and remembers: observed records built from watch events,
per-integration memory, and the user Secrets read by name.

Below the steps and the reconcile loop; may import the policy and render packages'
names only through :mod:`pagerbridge.controller.names`.
"""
