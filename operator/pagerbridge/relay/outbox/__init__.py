"""The durable outbox: typed jobs, the port (and the small views of it each user holds),
its SQLite and PostgreSQL adapters and the PostgreSQL ownership check.

Layer (pyproject's "Relay layers" contract): below inbound and outbound, beside config; may
import incidents only (and the shared modules).
"""
