"""``pagerbridge outbox`` and ``pagerbridge test-incident``: their command lines and the
tables ``outbox`` prints (the commands themselves run in tests/e2e/controller/
test_day2_commands.py)."""

from __future__ import annotations

from pagerbridge.cli import build_parser, main
from pagerbridge.ops.outbox_report import format_dead_letters, format_pending
from pagerbridge.ops.synthetic_incident import TAG, TITLE_PREFIX, synthetic_incident
from pagerbridge.relay.incidents.parsing import parse_incident


def test_shared_flags_go_anywhere_on_the_line() -> None:
    args = build_parser().parse_args(
        ["outbox", "payments", "replay", "42", "-n", "team-a", "--url", "http://x:9090",
         "--kubeconfig", "/k"]
    )  # fmt: skip
    assert (args.name, args.action, args.id, args.namespace) == ("payments", "replay", 42, "team-a")
    assert (args.url, args.kubeconfig) == ("http://x:9090", "/k")
    args = build_parser().parse_args(["test-incident", "payments", "--timeout", "5"])
    assert (args.name, args.timeout, args.url) == ("payments", 5.0, None)


def test_replay_needs_an_id_and_only_replay_takes_one(capsys) -> None:
    assert main(["outbox", "payments", "replay"]) == 2
    assert main(["outbox", "payments", "pending", "3"]) == 2
    assert "an ID goes with replay" in capsys.readouterr().err


def test_tables() -> None:
    assert format_pending([]) == "no pending jobs\n"
    assert format_dead_letters([]) == "no dead letters\n"
    pending = format_pending(
        [{"id": 7, "kind": "pd_event", "orderingKey": "inc-1", "ageSeconds": 4000.2, "attempts": 3}]
    )
    assert pending.splitlines() == [
        "ID  KIND      KEY    AGE  ATTEMPTS",
        "7   pd_event  inc-1  66m  3",
    ]
    letters = format_dead_letters(
        [{"id": 9, "kind": "pd_note", "orderingKey": "inc-2", "status": None,
          "error": "poison:\n  KeyError"}]
    )  # fmt: skip
    assert letters.splitlines()[1].split(None, 4) == [
        "9",
        "pd_note",
        "inc-2",
        "-",
        "poison: KeyError",
    ]


def test_the_synthetic_incident_is_labelled_and_parses_as_bigpanda_s() -> None:
    trigger = parse_incident(synthetic_incident("pagerbridge-test-1", 0))
    assert not trigger.resolved
    assert trigger.incident_tags[TAG] == "true"
    assert trigger.alerts[0].tags[TAG] == "true"
    assert (trigger.alerts[0].description or "").startswith(TITLE_PREFIX)
    resolve = parse_incident(synthetic_incident("pagerbridge-test-1", 2, resolved=True))
    assert resolve.resolved
    assert resolve.updated_at is not None
    assert trigger.updated_at is not None
    assert resolve.updated_at > trigger.updated_at
