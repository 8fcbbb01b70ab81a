"""Rendering of Webhook v2 ``{{variable}}`` templates (paths, headers, authorization, bodies).

BigPanda frames variables in double braces, spaces allowed (``{{ primaryAlert.tags.host }}``).
In a body, a string that is exactly one variable becomes that variable's value with its
own JSON type ("send data in the relevant data type, such as integers or timestamps");
a variable inside longer text is interpolated as text. Unknown variables render empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

_VARIABLE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
# One `"name" : "value"` pair of a Webhook v2 headers string (JSON string escapes allowed).
_HEADER_PAIR = re.compile(r'\s*"((?:[^"\\]|\\.)*)"\s*:\s*"((?:[^"\\]|\\.)*)"\s*')

Variables = Mapping[str, Any]


class TemplateError(ValueError):
    """A template that cannot be parsed (bad headers string)."""


def variables_in(template: str) -> list[str]:
    return _VARIABLE.findall(template)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def render_string(
    template: str, variables: Variables, escape: Callable[[str], str] | None = None
) -> str:
    """Interpolate every variable as text; ``escape`` (e.g. URL quoting) applies to values."""

    def substitute(match: re.Match[str]) -> str:
        text = _as_text(variables.get(match.group(1)))
        return escape(text) if escape is not None else text

    return _VARIABLE.sub(substitute, template)


def render_value(template: Any, variables: Variables) -> Any:
    """Render a JSON body template: strings inside objects and lists, keys untouched."""
    if isinstance(template, str):
        whole = _VARIABLE.fullmatch(template)
        if whole is not None:
            value = variables.get(whole.group(1))
            return "" if value is None else value
        return render_string(template, variables)
    if isinstance(template, dict):
        return {key: render_value(value, variables) for key, value in template.items()}
    if isinstance(template, list):
        return [render_value(item, variables) for item in template]
    return template


def parse_headers(headers: str) -> list[tuple[str, str]]:
    """Split ``"name" : "value", "other" : "v2"`` into pairs (braces around it allowed).

    Raises :class:`TemplateError` on anything else, so a bad config is refused when it
    is stored rather than when an incident is shared.
    """
    text = headers.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    pairs: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position] in " \t\r\n,":
            position += 1
            continue
        match = _HEADER_PAIR.match(text, position)
        if match is None:
            raise TemplateError(
                f'headers must be "name" : "value" pairs separated by commas '
                f"(cannot parse at character {position})"
            )
        name = json.loads(f'"{match.group(1)}"')
        value = json.loads(f'"{match.group(2)}"')
        if not name or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+|\{\{[^{}]+\}\}", name):
            raise TemplateError(f"invalid header name {name!r}")
        pairs.append((name, value))
        position = match.end()
    return pairs


def render_headers(headers: str, variables: Variables) -> dict[str, str]:
    """Parse then render names and values; line breaks in values are removed (no injection)."""
    rendered: dict[str, str] = {}
    for name, value in parse_headers(headers):
        clean_name = render_string(name, variables).strip()
        clean_value = re.sub(r"[\r\n]+", " ", render_string(value, variables)).strip()
        if clean_name:
            rendered[clean_name] = clean_value
    return rendered
