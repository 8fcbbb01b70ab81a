"""Reconcile steps: one module per part of an integration (children, exposure,
subscription, BigPanda integration, tokens), each returning its part of the status.

Below the reconcile loop; may import render, policy, state and external.
"""
