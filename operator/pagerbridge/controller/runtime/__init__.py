"""The operator's process runtime: kopf handlers, leader election, probes, kopf's login
and how its watches come back after the API server was away.

The top of the controller: it wires the reconcile package to kopf and may import every
other controller package; nothing in the controller imports it.
"""
