"""The durable outbox: typed jobs, the port every user of it depends on, and its SQLite
and PostgreSQL adapters.

Below inbound and outbound; may import incidents only.
"""
