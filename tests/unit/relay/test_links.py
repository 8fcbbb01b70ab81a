"""Links and images of a trigger (relay.incidents.links, rules of api.links): tag and
template rules, percent-encoding, every drop reason, the per-event counts and the URL
length bound; the rule models' own validation; and the trigger translate builds with them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pagerbridge.api import PagerDutyTagMappingSpec, RelayConfig
from pagerbridge.api.links import (
    MAX_EVENT_IMAGES,
    MAX_EVENT_LINKS,
    MAX_RULES,
    MAX_URL,
    ImageRule,
    LinkRule,
)
from pagerbridge.relay.incidents.links import Drop, build, check_url, expand
from pagerbridge.relay.incidents.overrides import choose_routing
from pagerbridge.relay.incidents.parsing import parse_incident
from pagerbridge.relay.incidents.translate import translate
from pagerbridge.relay.outcomes import LinkDropReason, LinkKind

from .support import CONFIG

R = LinkDropReason


def tags(**values: str):
    return values.get


def link(**kw: str) -> LinkRule:
    return LinkRule.model_validate(kw)


def image(**kw: str) -> ImageRule:
    return ImageRule.model_validate(kw)


# -- tags and templates -------------------------------------------------------------------


def test_a_tag_rule_takes_the_tags_value_as_the_url_and_its_name_as_default_text():
    built = build(
        tags(runbook="https://wiki.example/runbooks/cpu"),
        [link(tag="runbook"), link(tag="runbook", text="Runbook")],
        [],
    )
    assert built.links == (
        {"href": "https://wiki.example/runbooks/cpu", "text": "runbook"},
        {"href": "https://wiki.example/runbooks/cpu", "text": "Runbook"},
    )
    assert built.drops == ()


def test_a_template_substitutes_percent_encoded_values_and_keeps_its_literal_parts():
    lookup = tags(host="db-01/../admin?x=1&y=2#frag", env="prod eu", dash="a@b:c%")
    built = build(
        lookup,
        [
            link(
                template="https://grafana.example/d/abc?var-host={{host}}&env={{env}}",
                text="Dashboard",
            )
        ],
        [image(template="https://grafana.example/render/{{dash}}.png", alt="CPU")],
    )
    href = built.links[0]["href"]
    assert href == (
        "https://grafana.example/d/abc?var-host=db-01%2F..%2Fadmin%3Fx%3D1%26y%3D2%23frag"
        "&env=prod%20eu"
    )
    assert built.links[0]["text"] == "Dashboard"
    assert built.images == (
        {"src": "https://grafana.example/render/a%40b%3Ac%25.png", "alt": "CPU"},
    )


def test_a_substituted_value_cannot_move_the_host():
    # "@" and "/" are encoded, so a value put in the host stays one (odd) host name.
    url = expand("https://{{host}}.example/x", tags(host="evil.example/@"))
    assert url == "https://evil.example%2F%40.example/x"
    assert check_url(url) == url


def test_image_href_is_a_template_and_a_bad_one_leaves_the_image_without_it():
    built = build(
        tags(graph="https://charts.example/g.png", id="42"),
        [],
        [
            image(tag="graph", href="https://charts.example/view/{{id}}"),
            image(tag="graph", href="https://charts.example/view/{{absent}}"),
        ],
    )
    assert built.images == (
        {"src": "https://charts.example/g.png", "href": "https://charts.example/view/42"},
        {"src": "https://charts.example/g.png"},
    )
    assert built.drops == (
        Drop(LinkKind.IMAGE_HREF, "images[1]", "template (absent)", R.MISSING_TAG),
    )


# -- every drop reason ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("javascript:alert(1)", R.SCHEME, id="javascript"),
        pytest.param("ftp://files.example/x", R.SCHEME, id="ftp"),
        pytest.param("file:///etc/passwd", R.SCHEME, id="file"),
        pytest.param("//wiki.example/x", R.UNPARSABLE, id="no-scheme"),
        pytest.param("not a url", R.CONTROL_CHARACTERS, id="spaces"),
        pytest.param("wiki.example/page", R.UNPARSABLE, id="relative"),
        pytest.param("https://", R.UNPARSABLE, id="no-host"),
        pytest.param("https://[::1/x", R.UNPARSABLE, id="bad-ipv6"),
        pytest.param("https://wiki.example:99999/x", R.UNPARSABLE, id="bad-port"),
        pytest.param("https://wiki.example:port/x", R.UNPARSABLE, id="port-not-a-number"),
        pytest.param("https://user:s3cret@wiki.example/x", R.CREDENTIALS, id="user-password"),
        pytest.param("https://token@wiki.example/x", R.CREDENTIALS, id="user-only"),
        pytest.param("https://wiki.example/a\nb", R.CONTROL_CHARACTERS, id="newline"),
        pytest.param("https://wiki.example/a\x00b", R.CONTROL_CHARACTERS, id="nul"),
        pytest.param("https://wiki.example/\u202eexe.txt", R.CONTROL_CHARACTERS, id="bidi"),
        pytest.param("https://wiki.example/" + "a" * MAX_URL, R.TOO_LONG, id="too-long"),
        pytest.param("   ", R.MISSING_TAG, id="blank"),
    ],
)
def test_a_bad_tag_url_is_dropped_with_its_reason(value: str, reason: LinkDropReason):
    built = build(tags(runbook=value), [link(tag="runbook")], [])
    assert built.links == ()
    assert built.drops == (Drop(LinkKind.LINK, "links[0]", "tag runbook", reason),)


def test_a_missing_tag_drops_a_tag_rule_and_a_template_rule():
    built = build(
        tags(host="db-01"),
        [link(tag="runbook"), link(template="https://x.example/{{host}}/{{service}}")],
        [image(tag="graph")],
    )
    assert (built.links, built.images) == ((), ())
    assert built.drops == (
        Drop(LinkKind.LINK, "links[0]", "tag runbook", R.MISSING_TAG),
        Drop(LinkKind.LINK, "links[1]", "template (host, service)", R.MISSING_TAG),
        Drop(LinkKind.IMAGE, "images[0]", "tag graph", R.MISSING_TAG),
    )


def test_an_image_src_must_be_https():
    built = build(tags(graph="http://charts.example/g.png"), [], [image(tag="graph")])
    assert built.images == ()
    assert built.drops[0].reason is R.SCHEME
    # A link may be plain http.
    assert build(tags(graph="http://charts.example/g.png"), [link(tag="graph")], []).links


def test_a_substituted_value_that_makes_the_url_too_long_drops_it():
    template = "https://x.example/{{a}}"
    fits = "b" * (MAX_URL - len("https://x.example/"))
    assert build(tags(a=fits), [link(template=template)], []).links[0]["href"].endswith(fits)
    # One character more: over the bound. Encoding expands: 700 "/" become 2100 characters.
    assert build(tags(a=fits + "b"), [link(template=template)], []).drops[0].reason is R.TOO_LONG
    assert build(tags(a="/" * 700), [link(template=template)], []).drops[0].reason is R.TOO_LONG
    # A huge value is refused before it is encoded (bounded work).
    huge = build(tags(a="x" * 10_000_000), [link(template=template)], [])
    assert huge.drops[0].reason is R.TOO_LONG


def test_drops_never_carry_the_url():
    secret = "https://admin:hunter2@wiki.example/?token=abc123"
    built = build(tags(runbook=secret), [link(tag="runbook")], [])
    assert built.drops[0].reason is R.CREDENTIALS
    assert not any(part in repr(built.drops) for part in ("hunter2", "abc123", "wiki.example"))


# -- per-event counts ----------------------------------------------------------------------


def test_links_and_images_are_bounded_per_event_and_the_rest_counted_too_many():
    lookup = tags(**{f"t{i}": f"https://x.example/{i}" for i in range(20)})
    links = [link(tag="absent")] + [link(tag=f"t{i}") for i in range(MAX_EVENT_LINKS + 3)]
    images = [image(tag=f"t{i}") for i in range(MAX_EVENT_IMAGES + 2)]
    built = build(lookup, links, images)
    # A dropped rule leaves room for the next: the first MAX_EVENT_LINKS good ones are kept.
    assert [entry["href"] for entry in built.links] == [
        f"https://x.example/{i}" for i in range(MAX_EVENT_LINKS)
    ]
    assert len(built.images) == MAX_EVENT_IMAGES
    reasons = [(d.kind, d.reason) for d in built.drops]
    assert (
        reasons
        == [(LinkKind.LINK, R.MISSING_TAG)]
        + [(LinkKind.LINK, R.TOO_MANY)] * 3
        + [(LinkKind.IMAGE, R.TOO_MANY)] * 2
    )


# -- the rule models (what the CRD's schema also says) -------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param({}, id="neither"),
        pytest.param({"tag": "a", "template": "https://x.example/"}, id="both"),
        pytest.param({"template": "ftp://x.example/{{a}}"}, id="not-http"),
        pytest.param({"template": "https://x.example/{{a b}}"}, id="bad-placeholder"),
        pytest.param({"template": "https://x.example/{a}"}, id="single-brace"),
        pytest.param({"template": "https://x.example/ a"}, id="space"),
        pytest.param({"template": "https://x.example/" + "a" * MAX_URL}, id="too-long"),
        pytest.param({"tag": "has space"}, id="bad-tag"),
        pytest.param({"tag": "a", "text": "x" * 257}, id="long-text"),
        pytest.param({"tag": "a", "text": "a\nb"}, id="text-newline"),
    ],
)
def test_malformed_link_rules_are_refused(rule: dict[str, str]):
    with pytest.raises(ValidationError):
        LinkRule.model_validate(rule)


def test_an_image_template_must_be_https():
    with pytest.raises(ValidationError):
        ImageRule.model_validate({"template": "http://charts.example/{{id}}.png"})
    assert ImageRule.model_validate({"template": "https://charts.example/{{id}}.png"})


def test_mapping_spec_bounds_and_links_alone_are_enough():
    ref = {"integrationRef": {"name": "i"}}
    assert PagerDutyTagMappingSpec.model_validate({**ref, "links": [{"tag": "runbook"}]})
    with pytest.raises(ValidationError, match="at least one of mappings, links or images"):
        PagerDutyTagMappingSpec.model_validate(ref)
    with pytest.raises(ValidationError):
        PagerDutyTagMappingSpec.model_validate(
            {**ref, "links": [{"tag": "t"}] * (MAX_EVENT_LINKS + 1)}
        )
    with pytest.raises(ValidationError):
        PagerDutyTagMappingSpec.model_validate(
            {**ref, "images": [{"tag": "t"}] * (MAX_EVENT_IMAGES + 1)}
        )


def test_relay_config_bounds_its_rules():
    base = CONFIG.to_json_dict()
    assert RelayConfig.model_validate({**base, "links": [{"tag": "t"}] * MAX_RULES})
    with pytest.raises(ValidationError):
        RelayConfig.model_validate({**base, "links": [{"tag": "t"}] * (MAX_RULES + 1)})


# -- in the trigger ------------------------------------------------------------------------


def test_translate_adds_links_after_the_bigpanda_link_and_reports_drops():
    config = CONFIG.model_copy(
        update={
            "links": [link(tag="runbook", text="Runbook"), link(tag="absent")],
            "images": [image(template="https://charts.example/{{host}}.png", alt="CPU")],
        }
    )
    inc = parse_incident(
        {
            "id": "inc-1",
            "status": "critical",
            "alerts": [{"host": "db 01", "runbook": "https://wiki.example/cpu"}],
        }
    )
    t = translate(inc, config, choose_routing(inc, None, None), [])
    assert t.event["links"][0]["text"] == "BigPanda incident"
    assert t.event["links"][1:] == [{"href": "https://wiki.example/cpu", "text": "Runbook"}]
    assert t.event["images"] == [{"src": "https://charts.example/db%2001.png", "alt": "CPU"}]
    assert t.dropped_links == (Drop(LinkKind.LINK, "links[1]", "tag absent", R.MISSING_TAG),)
    # No rules: the event is exactly what it was before links and images existed.
    plain = translate(inc, CONFIG, choose_routing(inc, None, None), [])
    assert "images" not in plain.event
    assert len(plain.event["links"]) == 1


# -- any tag value -------------------------------------------------------------------------

_VALUES = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["https://ok.example/x", "http://a@b/", "https://[::1", "javascript:x"]),
    st.builds(lambda s: "https://h.example/" + s, st.text(max_size=100)),
)


@settings(max_examples=300, deadline=None)
@given(runbook=_VALUES, host=_VALUES)
def test_any_tag_values_give_sendable_urls_or_a_reasoned_drop(runbook: str, host: str):
    built = build(
        tags(runbook=runbook, host=host),
        [link(tag="runbook"), link(template="https://d.example/{{host}}?h={{host}}")],
        [image(tag="runbook", href="https://d.example/{{host}}")],
    )
    urls = [e["href"] for e in built.links] + [
        url for e in built.images for url in (e["src"], e.get("href")) if url
    ]
    for url in urls:
        assert check_url(url) == url  # never raises for what is sent
        assert len(url) <= MAX_URL
    # Every rule is either sent or dropped with a reason, exactly once.
    kinds = [d.kind for d in built.drops]
    assert len(built.links) + kinds.count(LinkKind.LINK) == 2
    assert len(built.images) + kinds.count(LinkKind.IMAGE) == 1
    assert kinds.count(LinkKind.IMAGE_HREF) <= len(built.images)
