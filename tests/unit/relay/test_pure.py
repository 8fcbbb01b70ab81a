"""Pure parts of the relay: parsing, translation, overrides, signatures, echo, backoff,
redaction and the outbox's durability and group commit (real SQLite files)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from pagerbridge.api.contract import is_routing_key
from pagerbridge.api.relay_config import RelayConfig
from pagerbridge.api.tag_mapping import TagMapping
from pagerbridge.jsonlog import JsonFormatter, Redactor
from pagerbridge.relay.errors import InvalidIncident
from pagerbridge.relay.inbound.signatures import sign, verify
from pagerbridge.relay.incidents import echo
from pagerbridge.relay.incidents.overrides import (
    choose_routing,
    header_mappings,
    merge_mappings,
)
from pagerbridge.relay.incidents.parsing import parse_incident
from pagerbridge.relay.incidents.translate import MAX_SUMMARY, translate
from pagerbridge.relay.outbound.retry import backoff
from pagerbridge.relay.outbox.jobs import PdNote
from pagerbridge.relay.outbox.sqlite import NewJob, Outbox

SAMPLES = Path("/work/shared/specs/bigpanda/samples")
CONFIG = RelayConfig.model_validate(
    {
        "pagerDuty": {"routingKeyFile": "/x"},
        "bigPanda": {"webhookTokenFile": "/y", "environmentId": "env1"},
    }
)


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def test_parse_bare_and_wrapped_samples_keep_unknown_fields():
    wrapped = parse_incident(sample("incident-new.json"))
    bare = parse_incident(sample("incident-commented.json"))
    assert wrapped.id == bare.id == "65f1c0de9a1b2c3d4e5f6a7b"
    assert wrapped.raw["flapping"] is False
    assert wrapped.alerts[0].tags["service"] == "payments"
    assert wrapped.alerts[1].tags == {"host": "db-prod-02", "check": "replication_lag"}
    assert wrapped.incident_tags == {"priority": "P1"}
    assert bare.comments[0].id == "c1"
    assert bare.comments[0].text == "Failing over to replica"
    assert parse_incident(sample("incident-resolved.json")).resolved


@pytest.mark.parametrize(
    "body", [[], "x", {"incident": {}}, {"id": ""}, {"id": None}, {"id": "a\nb"}, {"id": "x" * 300}]
)
def test_parse_refuses_non_incidents(body):
    with pytest.raises(InvalidIncident):
        parse_incident(body)


def test_parse_is_lenient_about_types():
    inc = parse_incident(
        {"id": 42, "status": 7, "active": "yes", "alerts": [1, {"tags": "x"}], "comments": {}}
    )
    assert inc.id == "42"
    assert inc.active is None
    # An unknown status is kept and maps like "unknown".
    assert (
        translate(inc, CONFIG, choose_routing(inc, None, None), []).event["payload"]["severity"]
        == "error"
    )
    assert len(inc.alerts) == 1
    assert inc.comments == ()


def test_comment_without_id_gets_stable_content_id():
    body = {"id": "i", "comment": {"text": "hi", "created_by": "a", "created_at": 1}}
    assert parse_incident(body).comments[0].id == parse_incident(body).comments[0].id


def test_translate_trigger_and_resolve():
    inc = parse_incident(sample("incident-new.json"))
    t = translate(inc, CONFIG, choose_routing(inc, None, None), [])
    assert t.action == "trigger"
    payload = t.event["payload"]
    assert payload["summary"].startswith("[CRITICAL] db-prod-01 cpu_load: CPU load")
    assert payload["class"] == "cpu_load"
    assert "routing_key" not in t.event
    assert t.event["links"][0]["href"].endswith("/incidents/65f1c0de9a1b2c3d4e5f6a7b")
    resolved = translate(
        parse_incident(sample("incident-resolved.json")),
        CONFIG,
        choose_routing(inc, None, None),
        [],
    )
    assert resolved.event == {"event_action": "resolve", "dedup_key": inc.id}


def test_summary_is_capped_and_hash_is_stable():
    inc = parse_incident({"id": "i", "alerts": [{"description": "x" * 5000}] * 3})
    t1 = translate(inc, CONFIG, choose_routing(inc, None, None), [])
    t2 = translate(inc, CONFIG, choose_routing(inc, None, None), [])
    assert len(t1.event["payload"]["summary"]) == MAX_SUMMARY
    assert t1.content_hash == t2.content_hash
    other = parse_incident({"id": "i", "alerts": [{"description": "y"}]})
    assert (
        translate(other, CONFIG, choose_routing(other, None, None), []).content_hash
        != t1.content_hash
    )


def test_routing_choice():
    key = "A" * 32
    inc = parse_incident({"id": "i", "alerts": [{"k1": key, "k2": "short"}]})
    assert choose_routing(inc, "k1", None).key == key
    assert choose_routing(inc, "k2", "k1").key == key  # header wins
    bad = choose_routing(inc, "k2", None)
    assert bad.key is None
    assert bad.fallback_reason == "invalid"
    assert "short" not in (bad.note or "")
    assert choose_routing(inc, "absent", None).fallback_reason == "missing"
    assert choose_routing(inc, None, None).key is None
    assert is_routing_key(key)
    assert not is_routing_key(key + "x")


def test_header_mappings_and_merge():
    mappings, ignored = header_mappings(
        [("X-BP-Config-Tag-host", "source"), ("x-bp-config-tag-a", "nope"), ("other", "x")]
    )
    assert mappings == [TagMapping(tag="host", field="source")]
    assert ignored == ["x-bp-config-tag-a"]
    merged = merge_mappings([TagMapping(tag="h2", field="source")], mappings)
    assert merged == [TagMapping(tag="host", field="source")]


def test_signatures_rotation_and_forgery():
    body = b'{"event": {}}'
    assert verify(sign("s1", body), body, ["s1"])
    assert verify(f"{sign('old', body)},{sign('new', body)}", body, ["new"])
    assert verify(sign("old", body), body, ["new", "old"])
    assert not verify(sign("s1", body), body + b" ", ["s1"])
    assert not verify(sign("s1", body)[:-2], body, ["s1"])
    assert not verify("v0=abc", body, ["s1"])
    assert not verify(None, body, ["s1"])
    assert not verify(sign("s1", body), body, [])


def test_echo_markers():
    note = echo.note_text("hello", "alice")
    comment = echo.comment_text("hi", "bob")
    assert echo.is_relay_text(note)
    assert echo.is_relay_text(comment)
    assert not echo.is_relay_text("hello")
    assert echo.wrote_comment_key("i", comment) == echo.wrote_comment_key("i", comment + " \n")
    assert len(echo.note_text("x" * 30000, None)) <= echo.MAX_NOTE_LENGTH


def test_backoff_grows_with_jitter_and_caps():
    assert 0.25 <= backoff(0) <= 0.5
    assert 2 <= backoff(3) <= 4
    assert backoff(50) <= 60


def test_redactor_scrubs_secrets_from_log_lines():
    import logging

    redactor = Redactor()
    redactor.set_secrets(["supersecretvalue123"])
    record = logging.LogRecord(
        "x", logging.ERROR, "", 0, "failed with %s", ("supersecretvalue123",), None
    )
    record.token = "supersecretvalue123"
    line = JsonFormatter(redactor).format(record)
    assert "supersecretvalue123" not in line
    assert "[REDACTED]" in line


async def test_outbox_durable_idempotent_and_group_committed(tmp_path):
    path = str(tmp_path / "o.db")
    outbox = Outbox(path)
    outbox.open(asyncio.get_running_loop())
    jobs = [
        NewJob(PdNote("i", str(i), "note"), f"key{i}", idempotency_key=f"id{i}") for i in range(300)
    ]
    results = await asyncio.gather(*(outbox.enqueue([j]) for j in jobs))
    assert all(not isinstance(r[0], str) for r in results)
    # 300 concurrent enqueues shared far fewer commits (one fsync each).
    assert outbox.commits < 100
    again = await outbox.enqueue([jobs[0]])
    assert again == ["duplicate"]
    skipped = await outbox.enqueue([NewJob(PdNote("i", "x", "n"), "x", unless_seen="id1")])
    assert skipped == ["echo"]
    await outbox.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 300
    conn.close()
    reopened = Outbox(path)
    reopened.open(asyncio.get_running_loop())
    pending = await reopened.pending()
    assert [j.spec for j in pending] == [PdNote("i", str(i), "note") for i in range(300)]
    await reopened.complete(pending[0].id, remember=["m1"])
    assert await reopened.seen("m1")
    await reopened.dead_letter(pending[1], 400, "bad")
    assert len(await reopened.pending()) == 298
    assert (await reopened.dead_letters())[0]["status"] == 400
    assert await reopened.prune(3600) == 0
    assert await reopened.prune(-1) > 300  # everything is older than "the future"
    assert not await reopened.seen("m1")
    await reopened.close()


def test_token_bucket_burst_then_rate_and_pause():
    import asyncio

    from pagerbridge.relay.outbound.ratelimit import Limit, TokenBucket
    from pagerbridge.relay.outbox.rates import LocalRates

    # 12 in any second, 3 at once: the burst, then one every 1/9 s (3 + 9 = 12).
    bucket = TokenBucket(Limit(12, 1.0, burst=3, margin=0.0), "b", LocalRates())
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    assert bucket.interval() == 1 / 9
    asyncio.run(bucket.throttled(5.0))  # a 429 with Retry-After: 5
    assert bucket.paused_for() > 4.9
    assert not bucket.try_take()
