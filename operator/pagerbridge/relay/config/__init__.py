"""The relay's configuration: the settings snapshot loaded from the RelayConfig and its
secret files, the file watch that swaps it, and the secrets the log redactor knows.

Layer (pyproject's "Relay layers" contract): beside outbox, below inbound, outbound and the
app; may import incidents and the shared modules (metrics, options, ...).
"""
