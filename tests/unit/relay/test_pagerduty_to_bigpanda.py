"""PagerDuty → BigPanda, and full cycles with BOTH simulators wired to one relay process.

Each cycle asserts the complete request logs of both simulators: a change made on one side
produces exactly one change on the other and the loop stops there.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from pagerbridge.relay.inbound.signatures import sign
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_TOKEN
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_ENVIRONMENT_ID
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN as PD_TOKEN
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY, DEFAULT_SERVICE_ID
from pagerbridge_devkit.waiting import wait_for

from .relayproc import WEBHOOK_TOKEN, RelayProcess, write_config
from .support import ALERT, Wired, signed_post

# Every test here starts a real relay process.
pytestmark = pytest.mark.component


@pytest.fixture
def wired(tmp_path, relays, pd_sim, bp_sim) -> Wired:
    return Wired(tmp_path, relays, pd_sim, bp_sim)


def test_resolve_in_bigpanda_resolves_pagerduty_once(wired):
    bp_id, pd_id = wired.open()
    wired.bp.resolve_incident(bp_id)
    wait_for(lambda: wired.pd.incident(pd_id).status == "resolved", what="PD resolved")
    wired.settle()
    assert wired.pd_writes() == [("event", "trigger"), ("event", "resolve")]
    assert wired.bp_writes() == []  # PagerDuty's incident.resolved was recognised as the echo
    assert wired.relay.metric("pagerbridge_relay_echo_suppressed_total", kind="resolve") == 1


def test_resolve_in_pagerduty_resolves_bigpanda_once(wired):
    bp_id, pd_id = wired.open()
    wired.pd.resolve(pd_id, by_email="carol@example.com")
    wait_for(lambda: not wired.bp.incident(bp_id).active, what="BigPanda resolved")
    wired.settle()
    assert wired.bp_writes() == [("resolve", 202)]
    resolves = wired.bp.api_resolves(bp_id)
    assert len(resolves) == 1
    assert "resolved in pagerduty" in resolves[0].text.lower()
    assert "carol" in resolves[0].text.lower()
    # BigPanda's webhook about the resolve is not sent back as a second resolve.
    assert wired.pd_writes() == [("event", "trigger")]


def test_note_in_pagerduty_becomes_one_bigpanda_comment(wired):
    bp_id, pd_id = wired.open()
    wired.pd.add_note(pd_id, "Rebooting web-1", by_email="dave@example.com")
    wait_for(lambda: wired.bp.api_comments(bp_id), what="BigPanda comment")
    wired.settle()
    comments = wired.bp.api_comments(bp_id)
    assert len(comments) == 1
    assert comments[0].text.startswith("Rebooting web-1")
    assert wired.bp_writes() == [("comments", 204)]
    # The comment came back in BigPanda's webhook and was not turned into a note.
    assert wired.pd_writes() == [("event", "trigger")]
    assert len(wired.pd.incident(pd_id).notes) == 1


def test_comment_in_bigpanda_becomes_one_pagerduty_note(wired):
    bp_id, pd_id = wired.open()
    wired.bp.add_comment(bp_id, "Escalating to DBA", by="erin@example.com")
    wait_for(lambda: wired.pd.incident(pd_id).notes, what="PD note")
    wired.settle()
    notes = wired.pd.incident(pd_id).notes
    assert len(notes) == 1
    assert notes[0].content.startswith("Escalating to DBA")
    kinds = [w[0] for w in wired.pd_writes()]
    assert kinds == ["event", "note"]
    # PagerDuty's incident.annotated about that note did not come back as a comment.
    assert wired.bp_writes() == []
    assert wired.relay.metric("pagerbridge_relay_echo_suppressed_total", kind="note") == 1


def test_acknowledge_sync_when_enabled(tmp_path, relays, pd_sim, bp_sim):
    w = Wired(
        tmp_path,
        relays,
        pd_sim,
        bp_sim,
        extra={"sync": {"resolve": True, "notes": True, "acknowledge": True}},
    )
    bp_id, pd_id = w.open()
    w.pd.acknowledge(pd_id, by_email="frank@example.com")
    wait_for(lambda: w.bp.api_comments(bp_id), what="ack comment")
    w.settle()
    assert "Acknowledged in PagerDuty" in w.bp.api_comments(bp_id)[0].text
    assert w.bp_writes() == [("comments", 204)]


def test_acknowledge_not_synced_by_default(wired):
    _, pd_id = wired.open()
    wired.pd.acknowledge(pd_id)
    wired.settle()
    assert wired.bp_writes() == []


def test_incident_not_created_by_pagerbridge_is_ignored(wired):
    wired.open()
    other = httpx.post(
        wired.pd_url + "/v2/enqueue",
        json={
            "routing_key": DEFAULT_ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": "someone-else-" + uuid.uuid4().hex,
            "payload": {"summary": "x", "source": "y", "severity": "info"},
        },
    )
    assert other.status_code == 202
    foreign = wait_for(
        lambda: [i for i in wired.pd.incidents() if i.incident_key.startswith("someone")]
    )
    wired.pd.resolve(foreign[0].id)
    wired.settle()
    assert wired.bp_writes() == []
    assert wired.relay.metric("pagerbridge_relay_ignored_total", reason="not_ours") == 1


def _resolved_body(pd_id: str, key: str) -> bytes:
    return json.dumps(
        {
            "event": {
                "id": uuid.uuid4().hex,
                "event_type": "incident.resolved",
                "resource_type": "incident",
                "agent": {"summary": "Grace", "type": "user_reference"},
                "data": {"id": pd_id, "type": "incident", "incident_key": key},
            }
        }
    ).encode()


FOREIGN_KEY = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0"


def _foreign_incident(w: Wired, incident_key: str) -> Any:
    """Another integration's incident, on another service, with one of our incident keys."""
    w.pd.add_service("PFOREIGN", FOREIGN_KEY, "Someone else's service")
    answer = httpx.post(
        w.pd_url + "/v2/enqueue",
        json={
            "routing_key": FOREIGN_KEY,
            "event_action": "trigger",
            "dedup_key": incident_key,
            "payload": {"summary": "theirs", "source": "elsewhere", "severity": "info"},
        },
    )
    assert answer.status_code == 202
    return wait_for(
        lambda: next(
            (
                i
                for i in w.pd.incidents()
                if i.incident_key == incident_key and i.service_id == "PFOREIGN"
            ),
            None,
        ),
        what="foreign PD incident",
    )


@pytest.mark.parametrize("service_known", [True, False])
def test_foreign_incident_with_our_key_gets_no_notes_and_resolves_nothing(
    tmp_path, relays, pd_sim, bp_sim, service_known
):
    """Issue 27: the relay acts on the PagerDuty incident its own trigger produced only.
    The foreign one is newer (the old look-up's newest match would have picked it) and,
    without pagerDuty.serviceId, only the first trigger's time tells them apart."""
    w = Wired(
        tmp_path,
        relays,
        pd_sim,
        bp_sim,
        pd_service_id=DEFAULT_SERVICE_ID if service_known else None,
    )
    bp_id, pd_id = w.open()
    ours = w.pd.incident(pd_id)
    assert ours is not None
    assert ours.service_id == DEFAULT_SERVICE_ID
    foreign = _foreign_incident(w, bp_id)
    # Its resolve and note come first, before the relay ever looked its incident up.
    w.pd.add_note(foreign.id, "their note")
    w.pd.resolve(foreign.id)
    w.settle()
    assert w.bp_writes() == []
    assert w.bp.incident(bp_id).active
    assert w.relay.metric("pagerbridge_relay_ignored_total", reason="foreign_same_key") == 2
    # A BigPanda comment becomes a note on our incident, none on theirs.
    w.bp.add_comment(bp_id, "ours only")
    w.settle()
    notes = [(kind, path) for kind, path in w.pd_writes() if kind == "note"]
    assert len(notes) == 1
    note_posts = [
        r.path for r in w.pd.requests.entries if r.path.endswith("/notes") and r.method == "POST"
    ]
    assert note_posts == [f"/incidents/{pd_id}/notes"]
    # Our own incident still works both ways.
    w.pd.resolve(pd_id)
    w.settle()
    assert not w.bp.incident(bp_id).active
    assert [e for e, _ in w.bp_writes()] == ["resolve"]


def test_forged_truncated_replayed_oversized_webhooks(wired):
    bp_id, pd_id = wired.open()
    body = _resolved_body(pd_id, bp_id)
    assert signed_post(wired, body, None).status_code == 401
    assert signed_post(wired, body, "not-the-secret").status_code == 401
    assert (
        signed_post(wired, body[:-5], None, signature=sign(wired.secret, body)).status_code == 401
    )
    assert signed_post(wired, body, None, signature="v1=").status_code == 401
    big = b'{"event": "' + b"x" * (600 * 1024) + b'"}'
    assert signed_post(wired, big, wired.secret).status_code == 413
    wired.settle()
    assert wired.bp_writes() == []  # nothing forged was forwarded
    first = signed_post(wired, body, wired.secret, webhook_id="wh-1")
    assert first.status_code == 200
    assert first.json()["status"] == "accepted"
    replay = signed_post(wired, body, wired.secret, webhook_id="wh-1")
    assert replay.status_code == 200
    assert replay.json()["status"] == "duplicate"
    wait_for(lambda: not wired.bp.incident(bp_id).active)
    wired.settle()
    assert [w for w in wired.bp_writes() if w[0] == "resolve"] == [("resolve", 202)]
    assert (
        wired.relay.metric(
            "pagerbridge_relay_webhooks_total", endpoint="pagerduty", outcome="unauthorized"
        )
        == 4
    )
    logs = wired.relay.logs()
    for secret in (wired.secret, BP_TOKEN, PD_TOKEN, DEFAULT_ROUTING_KEY, WEBHOOK_TOKEN):
        assert secret not in logs


def test_secret_rotation_two_secrets_at_once(tmp_path, relays, pd_sim, bp_sim):
    w = Wired(tmp_path, relays, pd_sim, bp_sim, secrets=["old-secret-4k2j3h"])
    bp_id, pd_id = w.open()
    body = _resolved_body(pd_id, bp_id)
    # PagerDuty signing with old and new secret during rotation: both entries in one header.
    both = f"{sign('old-secret-4k2j3h', body)}, {sign('brand-new-unknown', body)}"
    assert signed_post(w, body, None, webhook_id="r1", signature=both).status_code == 200
    # The relay's file holds two secrets: either one alone is accepted.
    other = _resolved_body(pd_id, bp_id)
    assert signed_post(w, other, w.secret, webhook_id="r2").status_code == 200
    w.settle()
    # The second resolve finds BigPanda already resolved: 409 counts as success.
    assert w.bp_writes() == [("resolve", 202), ("resolve", 409)]
    assert w.relay.metric("pagerbridge_relay_dead_letters_total") == 0
    assert w.relay.metric("pagerbridge_relay_deliveries_total", kind="bp_resolve") == 2


def test_pagerduty_webhook_404_when_not_configured(pd_sim, relays, tmp_path):
    from .conftest import start_relay

    _, url = pd_sim
    config = write_config(tmp_path, pd_url=url, routing_key=DEFAULT_ROUTING_KEY)
    relay = start_relay(relays, config)
    r = httpx.post(relay.url + "/v1/pagerduty/webhook", content=b"{}")
    assert r.status_code == 404
    assert r.json()["error"] == "not_configured"


def test_bigpanda_401_surfaces_and_is_retried_slowly(tmp_path, relays, pd_sim, bp_sim):
    w = Wired(
        tmp_path,
        relays,
        pd_sim,
        bp_sim,
        bp_token="wrong-bp-token-123456",
        args=["--unauthorized-retry", "0.5"],
    )
    bp_id, pd_id = w.open()
    w.pd.resolve(pd_id)
    wait_for(
        lambda: (
            httpx.get(w.relay.internal_url + "/readyz").json()["upstream"]["bigpanda"]
            == "unauthorized"
        ),
        what="readyz detail",
    )
    assert w.relay.metric("pagerbridge_relay_upstream_unauthorized", service="bigpanda") == 1
    assert w.bp.incident(bp_id).active
    # The operator rotates the Secret: the pending resolve goes through.
    (tmp_path / "secrets" / "bp-api-token").write_text(BP_TOKEN)
    wait_for(lambda: not w.bp.incident(bp_id).active, timeout=15, what="resolved after fix")
    assert "wrong-bp-token-123456" not in w.relay.logs()


def test_bigpanda_429_backs_off(tmp_path, relays, pd_sim, bp_sim):
    w = Wired(tmp_path, relays, pd_sim, bp_sim)
    bp_id, pd_id = w.open()
    w.bp.faults.fail_next(3, 429, path_prefix="/resources/")
    w.pd.add_note(pd_id, "one")
    wait_for(lambda: w.bp.api_comments(bp_id), timeout=15)
    w.settle()
    assert [s for _, s in w.bp_writes()] == [429, 429, 429, 204]


def test_late_trigger_is_confirmed_against_bigpanda(tmp_path, relays, pd_sim, bp_sim):
    pd, _ = pd_sim
    pd.faults.fail_next(None, 503, path_prefix="/v2/enqueue")
    w = Wired(tmp_path, relays, pd_sim, bp_sim)
    incident = w.bp.open_incident(alerts=[dict(ALERT)])
    wait_for(lambda: len(pd.requests.matching("POST", "/v2/enqueue")) >= 1)
    w.bp.resolve_incident(incident.id)
    assert w.bp.wait_webhooks_idle(10)
    pd.faults.clear()
    w.settle()
    # The delayed trigger was checked, found resolved in BigPanda, and not sent.
    sent = [
        r.json()["event_action"]
        for r in pd.requests.matching("POST", "/v2/enqueue")
        if r.status == 202
    ]
    assert sent == []  # nor its resolve: PagerDuty never had the incident (issue 25)
    assert pd.incident_by_key(incident.id) is None
    assert w.relay.metric("pagerbridge_relay_ignored_total", reason="late_trigger_resolved") == 1
    # Known from BigPanda's resolve webhook, recorded by the relay: no need to ask its API.
    assert w.relay.metric("pagerbridge_relay_late_trigger_checks_total", source="store") >= 1


def test_events_backlog_does_not_starve_bigpanda_writes(tmp_path, relays, pd_sim, bp_sim):
    """80 triggers wait for Events v2 tokens (6/min): a resolve for BigPanda still goes now."""
    from .support import incident

    w = Wired(tmp_path, relays, pd_sim, bp_sim, args=["--events-rate-limit", "6"])
    bp_id, pd_id = w.open()
    with httpx.Client(timeout=10) as client:
        for n in range(100, 180):
            r = client.post(
                w.relay.url + "/v1/bigpanda/webhook",
                json=incident(n),
                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
            )
            assert r.status_code == 202
    assert w.relay.metric("pagerbridge_relay_outbox_pending") > 64
    w.pd.resolve(pd_id)
    wait_for(lambda: not w.bp.incident(bp_id).active, timeout=10, what="BigPanda resolved")


def test_dependents_of_a_skipped_trigger_finish_at_once(tmp_path, relays, pd_sim, bp_sim):
    """Invariant: when the relay knows an incident will never exist in PagerDuty (its late
    trigger was skipped: resolved in BigPanda meanwhile), the jobs that depend on it (its
    notes) finish at once as skipped and are counted; none waits for the incident."""
    pd, pd_url = pd_sim
    bp, bp_url = bp_sim
    bp.set_rate_limit(None)
    incident = bp.open_incident(alerts=[dict(ALERT)])  # no webhook target: not shared yet
    bp.resolve_incident(incident.id)
    config = write_config(
        tmp_path,
        pd_url=pd_url,
        bp_url=bp_url,
        routing_key=DEFAULT_ROUTING_KEY,
        pd_api_token=PD_TOKEN,
        bp_api_token=BP_TOKEN,
        bp_environment=DEFAULT_ENVIRONMENT_ID,
    )
    # Every trigger counts as late here and is confirmed with BigPanda (BigPanda's resolve
    # webhook never reached this relay: only its API can tell).
    args = ["--late-trigger-after", "0", "--confirm-after", "0"]
    relay = RelayProcess(config, tmp_path / "relay.log", args)
    relays.append(relay)
    relay.start()
    comments = [{"id": f"c{i}", "comment": f"note {i}"} for i in range(3)]
    body = {"id": incident.id, "status": "critical", "alerts": [ALERT], "comments": comments}
    assert relay.post_bigpanda(body).status_code == 202
    # Well before the first NotReady retry could even have come due a second time.
    wait_for(lambda: relay.metric("pagerbridge_relay_outbox_pending") == 0, timeout=20)
    assert relay.metric("pagerbridge_relay_skipped_dependents_total", kind="pd_note") == 3
    assert relay.metric("pagerbridge_relay_deliveries_total", outcome="not_ready") == 0
    assert pd.incident_by_key(incident.id) is None
    assert not pd.requests.matching("POST", "/incidents/")  # no note written anywhere
    assert not [r for r in pd.requests.matching("POST", "/v2/enqueue") if r.status == 202]


def test_restored_late_trigger_is_confirmed_with_bigpanda(tmp_path, relays, pd_sim, bp_sim):
    """Invariant: a late trigger never reopens an incident resolved in BigPanda. The relay's
    record of BigPanda's webhooks answers only while it was listening; a trigger restored
    after a restart (BigPanda's resolve may have come while the relay was down) is
    confirmed with BigPanda's API, and not sent."""
    pd, pd_url = pd_sim
    bp, bp_url = bp_sim
    bp.set_rate_limit(None)
    incident = bp.open_incident(alerts=[dict(ALERT)])  # no webhook target: manual shares
    config = write_config(
        tmp_path,
        pd_url=pd_url,
        bp_url=bp_url,
        routing_key=DEFAULT_ROUTING_KEY,
        pd_api_token=PD_TOKEN,
        bp_api_token=BP_TOKEN,
        bp_environment=DEFAULT_ENVIRONMENT_ID,
    )
    pd.faults.fail_next(None, 503, path_prefix="/v2/enqueue")
    relay = RelayProcess(config, tmp_path / "relay.log", ["--late-trigger-after", "0"])
    relays.append(relay)
    relay.start()
    body = {"id": incident.id, "status": "critical", "alerts": [ALERT]}
    assert relay.post_bigpanda(body).status_code == 202
    wait_for(lambda: pd.requests.matching("POST", "/v2/enqueue"), what="a failed attempt")
    relay.kill()
    bp.resolve_incident(incident.id)  # while the relay is down: its webhook is missed
    pd.faults.clear()
    relay.start()
    wait_for(lambda: relay.metric("pagerbridge_relay_outbox_pending") == 0, timeout=30)
    assert relay.metric("pagerbridge_relay_late_trigger_checks_total", source="bigpanda") >= 1
    assert relay.metric("pagerbridge_relay_ignored_total", reason="late_trigger_resolved") == 1
    assert not [r for r in pd.requests.matching("POST", "/v2/enqueue") if r.status == 202]


def test_notes_of_an_incident_never_triggered_finish_at_once(tmp_path, relays, pd_sim):
    """Invariant (issue 25, item 5): a note for an incident the relay never triggered and
    that PagerDuty does not have finishes at once as skipped and is counted; it does not
    retry "not found yet" until the poison bound. Seen with hostile input: an incident
    first shared already resolved, with comments (12 attempts over more than 60 s)."""
    pd, pd_url = pd_sim
    config = write_config(
        tmp_path, pd_url=pd_url, routing_key=DEFAULT_ROUTING_KEY, pd_api_token=PD_TOKEN
    )
    relay = RelayProcess(config, tmp_path / "relay.log")
    relays.append(relay)
    relay.start()
    comments = [{"id": f"c{i}", "comment": f"note {i}"} for i in range(3)]
    body = {
        "id": "inc-first-shared-resolved",
        "status": "ok",
        "active": False,
        "alerts": [{**ALERT, "status": "ok"}],
        "comments": comments,
    }
    assert relay.post_bigpanda(body).status_code == 202
    # One look at PagerDuty each, then done: no retry was ever scheduled.
    wait_for(lambda: relay.metric("pagerbridge_relay_outbox_pending") == 0, timeout=20)
    assert relay.metric("pagerbridge_relay_skipped_dependents_total", kind="pd_note") == 3
    assert relay.metric("pagerbridge_relay_deliveries_total", outcome="not_ready") == 0
    assert relay.metric("pagerbridge_relay_deliveries_total", outcome="skipped_no_incident") == 3
    assert pd.incident_by_key(body["id"]) is None
    assert not pd.requests.matching("POST", "/incidents/")  # no note written anywhere
