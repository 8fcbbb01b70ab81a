"""Simulators of PagerDuty and BigPanda, faithful to their public API documents.

They stand in for the SaaS in tests, in ``pagerbridge demo`` and in the benchmarks, and
double as fault injectors (:mod:`pagerbridge_devkit.sandbox.faults`) with full request
inspection (:mod:`pagerbridge_devkit.sandbox.recording`).
"""
