"""``pagerbridge outbox``: the relay's admin API, formatted for a human (or as JSON)."""

from __future__ import annotations

import json
import sys
from typing import Any

from pagerbridge.api.contract import (
    RELAY_ADMIN_DEAD_LETTERS_PATH,
    RELAY_ADMIN_DRIFT_PATH,
    RELAY_ADMIN_PENDING_PATH,
    RELAY_ADMIN_REPLAY_PATH,
    RELAY_ADMIN_TOKEN_HEADER,
    RELAY_INTERNAL_PORT_NAME,
)
from pagerbridge.clients.kubernetes import Credentials, KubernetesClient
from pagerbridge.controller import names as n
from pagerbridge.ops.relay_access import RelayAccessError, relay_port, secret_value


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in rows
    )


def format_pending(jobs: list[dict[str, Any]]) -> str:
    if not jobs:
        return "no pending jobs\n"
    rows = [["ID", "KIND", "KEY", "AGE", "ATTEMPTS"]]
    rows += [
        [str(j["id"]), j["kind"], j["orderingKey"], _age(j["ageSeconds"]), str(j["attempts"])]
        for j in jobs
    ]
    return _table(rows)


def format_dead_letters(letters: list[dict[str, Any]]) -> str:
    if not letters:
        return "no dead letters\n"
    rows = [["ID", "KIND", "KEY", "STATUS", "ERROR"]]
    rows += [
        [
            str(d["id"]),
            d["kind"],
            d["orderingKey"],
            "-" if d["status"] is None else str(d["status"]),
            " ".join(str(d["error"] or "").split())[:120],
        ]
        for d in letters
    ]
    return _table(rows)


def format_drift(checked: int, drift: list[dict[str, Any]]) -> str:
    head = f"{checked} open incident(s) compared\n"
    if not drift:
        return head + "BigPanda and PagerDuty agree\n"
    rows = [["INCIDENT", "PAGERDUTY", "BIGPANDA", "PAGERDUTY STATUS", "REPAIR", "REASON"]]
    rows += [
        [
            d["incidentId"],
            d["pagerDutyIncidentId"] or "-",
            "active" if d["bigPandaActive"] else "resolved",
            d["pagerDutyStatus"] or "-",
            d["repair"],
            d["reason"],
        ]
        for d in drift
    ]
    return head + _table(rows)


async def outbox(
    credentials: Credentials,
    name: str,
    namespace: str | None,
    action: str,
    job_id: int | None,
    *,
    url: str | None,
    output: str,
) -> int:
    namespace = namespace or credentials.default_namespace
    async with KubernetesClient(credentials) as kube:
        try:
            token = await secret_value(
                kube, namespace, n.ChildNames(name).admin_secret, n.ADMIN_TOKEN_KEY
            )
            port = await relay_port(kube, namespace, name, RELAY_INTERNAL_PORT_NAME, url)
            headers = {RELAY_ADMIN_TOKEN_HEADER: token}
            if action == "pending":
                reply = await port.call("GET", RELAY_ADMIN_PENDING_PATH, headers)
            elif action == "dead-letters":
                reply = await port.call("GET", RELAY_ADMIN_DEAD_LETTERS_PATH, headers)
            elif action == "drift":
                reply = await port.call("GET", RELAY_ADMIN_DRIFT_PATH, headers)
            else:
                path = RELAY_ADMIN_REPLAY_PATH.format(job_id=job_id)
                reply = await port.call("POST", path, headers)
        except RelayAccessError as exc:
            print(f"pagerbridge outbox: {exc}", file=sys.stderr)
            return 1
    if reply.status >= 300:
        print(
            f"pagerbridge outbox: the relay of {namespace}/{name} answered {reply.status}: "
            f"{reply.message()}",
            file=sys.stderr,
        )
        return 1
    if output == "json":
        print(json.dumps(reply.body, indent=2))
    elif action == "pending":
        sys.stdout.write(format_pending(reply.body["pending"]))
    elif action == "dead-letters":
        sys.stdout.write(format_dead_letters(reply.body["deadLetters"]))
    elif action == "drift":
        sys.stdout.write(format_drift(reply.body["checked"], reply.body["drift"]))
    else:
        print(f"dead letter {job_id} is pending again (`pagerbridge outbox {name} pending`)")
    return 0
