"""Reconcile steps: one module per part of an integration (children, generated Secrets,
exposure, subscription, BigPanda integration, tokens), each returning its condition and
its part of the status as an API model.

Below the reconcile loop; may import external, render, policy and state.
"""
