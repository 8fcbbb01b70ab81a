"""The repair sweep (issue 27, relay/inbound/sweep.py) with a real relay process and both
simulators: webhooks lost for good on either side are repaired within one sweep interval,
through the outbox (one write each, no echo), and nothing is written while both agree."""

from __future__ import annotations

import time

import httpx
import pytest

from pagerbridge.api.contract import RELAY_ADMIN_DRIFT_PATH
from pagerbridge.relay.inbound.sweep import DUE, PASSES
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_SERVICE_ID
from pagerbridge_devkit.waiting import wait_for

from .support import ALERT, Wired

OVERRIDE_KEY = "0be1de0be1de0be1de0be1de0be1de00"

# Every test here starts a real relay process.
pytestmark = pytest.mark.component

INTERVAL = 3.0  # --sweep-interval of these tests
ARGS = ["--sweep-interval", str(INTERVAL), "--sweep-share", "1"]
# How long a repair may take once the relay is up: one interval (an incident is due again
# DUE intervals after its last check, passes come every interval / PASSES), plus the
# delivery itself; generous for a loaded machine, and derived from the settings.
BOUND = INTERVAL * (DUE + 1 / PASSES) + INTERVAL + 20.0


@pytest.fixture
def wired(tmp_path, relays, pd_sim, bp_sim) -> Wired:
    return Wired(tmp_path, relays, pd_sim, bp_sim, args=ARGS)


def test_pagerduty_resolve_lost_while_the_relay_was_down_is_repaired(wired: Wired) -> None:
    bp_id, pd_id = wired.open()
    wired.relay.kill()  # unreachable: PagerDuty's webhook would fail, then be dropped
    wired.pd.drop_webhooks()
    wired.pd.resolve(pd_id)
    wired.pd.drop_webhooks(False)
    assert wired.pd.dropped_webhooks == ["incident.resolved"]
    wired.relay.start()
    back = time.monotonic()
    wait_for(lambda: not wired.bp.incident(bp_id).active, timeout=BOUND, what="BP resolved")
    elapsed = time.monotonic() - back
    print(f"BigPanda resolved {elapsed:.1f} s after the relay was back (interval {INTERVAL})")
    wired.settle()
    assert [e for e, _ in wired.bp_writes()] == ["resolve"]
    repairs = wired.relay.metric(
        "pagerbridge_relay_repairs_total", direction="to_bigpanda", reason="resolved_in_pagerduty"
    )
    assert repairs == 1
    # BigPanda's webhook about the resolve is the relay's own echo: PagerDuty gets nothing.
    assert [w for w in wired.pd_writes() if w != ("event", "trigger")] == []


def test_bigpanda_resolve_webhook_never_sent_is_repaired(wired: Wired) -> None:
    bp_id, pd_id = wired.open()
    wired.bp.drop_webhooks()
    wired.bp.resolve_incident(bp_id)
    wired.bp.drop_webhooks(False)
    assert wired.bp.dropped_webhooks == 1
    incident = wired.pd.incident(pd_id)
    assert incident is not None
    wait_for(
        lambda: wired.pd.incident(pd_id).status == "resolved",  # type: ignore[union-attr]
        timeout=BOUND,
        what="PD resolved",
    )
    wired.settle()
    assert wired.pd_writes() == [("event", "trigger"), ("event", "resolve")]
    repairs = wired.relay.metric(
        "pagerbridge_relay_repairs_total", direction="to_pagerduty", reason="resolved_in_bigpanda"
    )
    assert repairs == 1
    assert wired.bp_writes() == []  # PagerDuty's webhook about it is an echo


def test_nothing_is_written_while_both_sides_agree(wired: Wired) -> None:
    opened = [wired.open() for _ in range(3)]
    pd_before, bp_before = wired.pd_writes(), wired.bp_writes()
    checks = wired.relay.metric("pagerbridge_relay_sweep_checks_total")
    reads_before = wired.relay.metric("pagerbridge_relay_sweep_requests_total")
    started = time.monotonic()
    passes = wired.relay.metric("pagerbridge_relay_sweep_passes_total")
    # Ten sweeps: every open incident checked ten more times.
    wait_for(
        lambda: (
            wired.relay.metric("pagerbridge_relay_sweep_checks_total", verdict="agree")
            >= checks + 10 * len(opened)
        ),
        timeout=10 * BOUND,
        what="ten sweeps",
    )
    elapsed = time.monotonic() - started
    assert wired.relay.metric("pagerbridge_relay_sweep_passes_total") > passes
    rate = (wired.relay.metric("pagerbridge_relay_sweep_requests_total") - reads_before) / elapsed
    per_100 = rate * 100 / len(opened)
    print(
        f"sweep reads: {per_100:.1f}/s per 100 open incidents at a {INTERVAL} s interval, "
        f"{per_100 * INTERVAL / 300:.2f}/s at the default 300 s"
    )
    wired.settle()
    assert wired.pd_writes() == pd_before
    assert wired.bp_writes() == bp_before
    assert wired.relay.metric("pagerbridge_relay_repairs_total") == 0
    assert wired.relay.metric("pagerbridge_relay_sweep_checks_total", verdict="repaired") == 0
    reads = wired.relay.metric("pagerbridge_relay_sweep_requests_total")
    assert reads >= 2 * 10 * len(opened)
    oldest = wired.relay.metric("pagerbridge_relay_sweep_oldest_unchecked_seconds")
    assert oldest <= BOUND


@pytest.mark.parametrize("scope", ["service", "account"])
def test_override_routed_incident_resolved_in_pagerduty_is_resolved_in_bigpanda(
    tmp_path, relays, pd_sim, bp_sim, scope: str
) -> None:
    """Issue 27: an incident routed by a key override to a second service. With the
    subscription on the default service only, PagerDuty never sends its resolve: the sweep
    brings it; with the account in scope the webhook does, and the relay knows the incident
    as its own (its first trigger's time: an override key's service is not known)."""
    w = Wired(
        tmp_path,
        relays,
        pd_sim,
        bp_sim,
        args=ARGS,
        extra={"keyOverrideTag": "pd_key"},
        pd_service_id=DEFAULT_SERVICE_ID,
        subscription_service=DEFAULT_SERVICE_ID if scope == "service" else None,
    )
    w.pd.add_service("PSECOND", OVERRIDE_KEY, "Second service")
    incident = w.bp.open_incident(alerts=[{**ALERT, "pd_key": OVERRIDE_KEY}])
    pd_incident = wait_for(lambda: w.pd.incident_by_key(incident.id), what="PD incident")
    assert pd_incident.service_id == "PSECOND"
    w.settle()
    w.pd.resolve(pd_incident.id)
    wait_for(lambda: not w.bp.incident(incident.id).active, timeout=BOUND, what="BP resolved")
    w.settle()
    assert [e for e, _ in w.bp_writes()] == ["resolve"]
    repaired = w.relay.metric("pagerbridge_relay_repairs_total", direction="to_bigpanda")
    assert repaired == (1 if scope == "service" else 0)


def test_drift_lists_what_the_next_sweep_would_repair_without_repairing(
    tmp_path, relays, pd_sim, bp_sim
) -> None:
    """``GET /admin/v1/drift`` (``pagerbridge outbox NAME drift``): the differences, and
    nothing written; here with the sweep's passes off (``--sweep-interval 0``)."""
    w = Wired(
        tmp_path, relays, pd_sim, bp_sim, args=["--sweep-interval", "0"], admin_token="adm-tok"
    )
    agreeing, _ = w.open()
    bp_id, pd_id = w.open()
    w.bp.drop_webhooks()
    w.bp.resolve_incident(bp_id)
    w.bp.drop_webhooks(False)

    def drift() -> dict[str, object]:
        answer = httpx.get(
            w.relay.internal_url + RELAY_ADMIN_DRIFT_PATH,
            headers={"Authorization": "Bearer adm-tok"},
            timeout=30,
        )
        assert answer.status_code == 200
        body: dict[str, object] = answer.json()
        return body

    listed = drift()
    assert listed["checked"] == 2
    assert listed["drift"] == [
        {
            "incidentId": bp_id,
            "pagerDutyIncidentId": pd_id,
            "bigPandaActive": False,
            "pagerDutyStatus": "triggered",
            "repair": "resolve_pagerduty",
            "reason": "resolved_in_bigpanda",
        }
    ]
    assert agreeing != bp_id
    w.settle()
    assert w.pd.incident(pd_id).status == "triggered"  # type: ignore[union-attr]
    assert [e for e in w.pd_writes() if e != ("event", "trigger")] == []
    assert w.relay.metric("pagerbridge_relay_repairs_total") == 0
    assert drift()["drift"] == listed["drift"]  # still there: nothing was repaired


def test_an_incident_whose_trigger_was_dead_lettered_is_triggered_again(wired: Wired) -> None:
    """Active in BigPanda with no PagerDuty incident (PagerDuty refused the trigger for
    good): the sweep triggers it again from BigPanda's state, once."""
    wired.pd.faults.fail_next(1, 400, path_prefix="/v2/enqueue")  # type: ignore[arg-type]
    incident = wired.bp.open_incident(alerts=[dict(ALERT)])
    wait_for(
        lambda: wired.relay.metric("pagerbridge_relay_dead_letters_total") == 1,
        timeout=BOUND,
        what="the trigger dead-lettered",
    )
    assert wired.pd.incident_by_key(incident.id) is None
    created = wait_for(
        lambda: wired.pd.incident_by_key(incident.id), timeout=BOUND, what="triggered again"
    )
    assert created.status == "triggered"
    repairs = wired.relay.metric(
        "pagerbridge_relay_repairs_total", direction="to_pagerduty", reason="no_pagerduty_incident"
    )
    assert repairs == 1
    # It stays one: later passes find it open on both sides.
    checks = wired.relay.metric("pagerbridge_relay_sweep_checks_total", verdict="agree")
    wait_for(
        lambda: (
            wired.relay.metric("pagerbridge_relay_sweep_checks_total", verdict="agree")
            >= checks + 2
        ),
        timeout=3 * BOUND,
        what="two more checks",
    )
    triggers = [w for w in wired.pd_writes() if w == ("event", "trigger")]
    assert len(triggers) == 2  # the refused one and the repair
    assert wired.relay.metric("pagerbridge_relay_repairs_total") == 1


def test_a_snoozed_incident_triggered_again_is_acknowledged_too(
    tmp_path, relays, pd_sim, bp_sim
) -> None:
    """sync.snooze: the sweep's trigger from BigPanda's state is followed by the acknowledge
    BigPanda's snoozed share would have made (its webhook was lost), in the same lane."""
    wired = Wired(tmp_path, relays, pd_sim, bp_sim, args=ARGS, extra={"sync": {"snooze": True}})
    wired.pd.faults.fail_next(1, 400, path_prefix="/v2/enqueue")  # type: ignore[arg-type]
    incident = wired.bp.open_incident(alerts=[dict(ALERT)])
    wait_for(
        lambda: wired.relay.metric("pagerbridge_relay_dead_letters_total") == 1,
        timeout=BOUND,
        what="the trigger dead-lettered",
    )
    wired.bp.drop_webhooks()
    wired.bp.snooze_incident(incident.id)
    acknowledged = wait_for(
        lambda: (
            (found := wired.pd.incident_by_key(incident.id)) is not None
            and found.status == "acknowledged"
            and found
        ),
        timeout=BOUND,
        what="triggered again and acknowledged",
    )
    assert [e["event_action"] for e in acknowledged.events] == ["trigger", "acknowledge"]
    assert wired.relay.metric("pagerbridge_relay_repairs_total") == 1
