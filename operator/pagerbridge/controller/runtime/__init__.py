"""The operator's process runtime: kopf handlers, leader election, probes and kopf's
login.

The top of the controller: it wires the reconcile package to kopf and may import every
other controller package; nothing in the controller imports it.
"""
