"""The reconcile loop of an integration: runs the steps, writes status once, cleans up
on deletion.

Below the runtime; above steps, render, state, external and policy.
"""
