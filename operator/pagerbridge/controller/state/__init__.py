"""What the operator observes and remembers: observed records built from watch events,
per-integration memory, and the user Secrets read by name.

At the bottom of the controller, beside policy (neither imports the other): imports only
api, clients and the controller's top-level modules, never render, external, steps,
reconcile or runtime.
"""
