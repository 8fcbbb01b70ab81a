"""The OpenAPI 3.1 document of the relay's own HTTP endpoints (served at /openapi.json on
the internal port). The two webhook paths are the public port's; every other path is the
internal port's."""

from __future__ import annotations

from typing import Any

from pagerbridge.api.contract import (
    BIGPANDA_WEBHOOK_PATH,
    KEY_OVERRIDE_HEADER,
    PAGERDUTY_WEBHOOK_PATH,
    RELAY_ADMIN_DEAD_LETTERS_PATH,
    RELAY_ADMIN_DRIFT_PATH,
    RELAY_ADMIN_PENDING_PATH,
    RELAY_ADMIN_REPLAY_PATH,
    RELAY_LIVENESS_PATH,
    RELAY_METRICS_PATH,
    RELAY_OPENAPI_PATH,
    RELAY_READINESS_PATH,
    TAG_MAPPING_HEADER_PREFIX,
)

_ERROR = {
    "description": "Refused; nothing stored.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

# The edge's refusals (relay.inbound.budget), before the application sees the request.
_BUSY = {
    "description": "Refused by the public port's memory budget (429: this address's share, "
    "503: the whole pool or connection limit); nothing stored, retry after the given "
    "seconds.",
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    "content": _ERROR["content"],
}
_BUSY_OR_STORE = {
    **_BUSY,
    "description": "The outbox cannot be written, or the public port's memory budget is "
    "full (then with Retry-After); nothing stored, retry.",
}
_EDGE = {"429": _BUSY, "431": {**_ERROR, "description": "Request line and headers too large."}}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PagerBridge relay",
            "version": "v1",
            "description": "Receives BigPanda incident webhooks and PagerDuty Webhooks v3 and "
            "relays them through a durable outbox.",
        },
        "paths": {
            BIGPANDA_WEBHOOK_PATH: {
                "post": {
                    "summary": 'BigPanda incident (bare or wrapped as {"incident": ...})',
                    "security": [{"bearer": []}],
                    "parameters": [
                        {
                            "name": KEY_OVERRIDE_HEADER,
                            "in": "header",
                            "required": False,
                            "description": "Alert tag whose value is this incident's "
                            "PagerDuty integration key (wins over keyOverrideTag).",
                            "schema": {"type": "string"},
                        }
                    ],
                    "description": f"Headers {TAG_MAPPING_HEADER_PREFIX}<tag>: <field> map a "
                    "tag onto "
                    "summary, source, severity, component, group, class or "
                    "custom_details.<name>.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/BigPandaIncident"}
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Durably queued.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Accepted"}
                                }
                            },
                        },
                        "400": _ERROR,
                        "401": _ERROR,
                        "413": _ERROR,
                        "415": _ERROR,
                        "422": _ERROR,
                        **_EDGE,
                        "503": _BUSY_OR_STORE,
                    },
                }
            },
            PAGERDUTY_WEBHOOK_PATH: {
                "post": {
                    "summary": "PagerDuty Webhooks v3 (X-PagerDuty-Signature verified)",
                    "parameters": [
                        {
                            "name": "X-PagerDuty-Signature",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "X-Webhook-Id",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "responses": {
                        "200": {"description": "Accepted, duplicate or ignored."},
                        "400": _ERROR,
                        "401": _ERROR,
                        "404": _ERROR,
                        "413": _ERROR,
                        "415": _ERROR,
                        "422": _ERROR,
                        **_EDGE,
                        "503": _BUSY,
                    },
                }
            },
            RELAY_LIVENESS_PATH: {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}
            },
            RELAY_READINESS_PATH: {
                "get": {
                    "summary": "Readiness: config loaded, outbox writable; upstream auth detail",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
            RELAY_METRICS_PATH: {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text"}},
                }
            },
            RELAY_OPENAPI_PATH: {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI"}},
                }
            },
            RELAY_ADMIN_PENDING_PATH: {
                "get": {
                    "summary": "Admin: jobs waiting in the outbox, oldest first",
                    "security": [{"bearer": []}],
                    "responses": {"200": {"description": "jobs"}, "401": _ERROR, "404": _ERROR},
                }
            },
            RELAY_ADMIN_DEAD_LETTERS_PATH: {
                "get": {
                    "summary": "Admin: jobs given up (dead letters)",
                    "security": [{"bearer": []}],
                    "responses": {"200": {"description": "jobs"}, "401": _ERROR, "404": _ERROR},
                }
            },
            RELAY_ADMIN_DRIFT_PATH: {
                "get": {
                    "summary": "Admin: differences between BigPanda and PagerDuty the repair "
                    "sweep would repair (nothing is repaired)",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {"description": "differences"},
                        "401": _ERROR,
                        "404": _ERROR,
                    },
                }
            },
            RELAY_ADMIN_REPLAY_PATH: {
                "post": {
                    "summary": "Admin: put a dead letter back into the outbox",
                    "security": [{"bearer": []}],
                    "parameters": [
                        {
                            "name": "job_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "202": {"description": "queued again"},
                        "401": _ERROR,
                        "404": _ERROR,
                        "409": _ERROR,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                },
                "Accepted": {
                    "type": "object",
                    "properties": {
                        "status": {"const": "accepted"},
                        "incident_id": {"type": "string"},
                        "action": {"enum": ["trigger", "resolve"]},
                        "queued": {"type": "integer"},
                        "duplicates": {"type": "integer"},
                    },
                },
                "BigPandaIncident": {
                    "type": "object",
                    "required": ["id"],
                    "additionalProperties": True,
                    "properties": {
                        "id": {"type": "string"},
                        "status": {"enum": ["critical", "warning", "unknown", "ok"]},
                        "active": {"type": "boolean"},
                        "alerts": {"type": "array", "items": {"type": "object"}},
                        "incident_tags": {"type": "array", "items": {"type": "object"}},
                        "comments": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
    }
