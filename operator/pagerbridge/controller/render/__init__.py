"""Pure functions from a spec and observed data to what the cluster should hold: the
RelayConfig, the children, the exposure objects, conditions and status.

No I/O (an import-linter contract says so); may import policy, not steps, reconcile or
runtime.
"""
