"""Pure functions from a spec and observed data to what the cluster should hold: the
RelayConfig, the children, the exposure objects, conditions and Ready.

No I/O (an import-linter contract says so); may import policy and state (their records,
e.g. ``SecretInfo``), never external, steps, reconcile or runtime.
"""
