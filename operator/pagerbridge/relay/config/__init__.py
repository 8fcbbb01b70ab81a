"""The relay's configuration: the settings snapshot loaded from the RelayConfig and its
secret files, the file watch that swaps it, and the secrets the log redactor knows.

Below inbound, outbound and the app; may import incidents.
"""
