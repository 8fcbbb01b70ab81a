"""The cluster admin's bounds on what a tenant's custom resource may ask for: spec URLs
against the egress policy, the relay pod policy, the expose policy.

Pure: no I/O. Near the bottom of the controller; imports only api, clients' policy types
and controller top-level modules.
"""
