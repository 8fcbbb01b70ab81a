"""PagerDuty's official OpenAPI documents, and validators compiled from them.

The simulator checks what it receives (and the contract tests check what it answers)
against PagerDuty's own documents, shipped unchanged in ``specs/`` (see
``specs/SOURCE.md``), rather than against our reading of them. Validators are compiled
once per schema and cached: the Events API hot path validates every event.

Schemas are OpenAPI 3.0 (``nullable``, ``readOnly``): requests are checked with
``OAS30WriteValidator``, responses with ``OAS30ReadValidator``. ``$ref`` pointers resolve
within their document because each compiled schema carries the document's
``components``.

That interpreter costs ~150 us per event, too slow for the Events API's hot path (the
simulator must take 3,000 events/s on one core). :func:`fast_request_check` compiles the
same schema to Python code with ``fastjsonschema`` (references inlined, format checks off
as in the OAS validator): ~10 us. Only when it rejects an event does the OAS validator run,
to produce the error messages and to have the last word.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, Literal, Protocol

from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator

try:
    import fastjsonschema
except ImportError:  # optional: without it the OAS validator checks every request
    fastjsonschema = None  # type: ignore[assignment]

SpecName = Literal["REST", "events-v2"]

#: The documents, relative to this package (file names as in PagerDuty/api-schema).
SPEC_FILES: dict[SpecName, str] = {
    "REST": "specs/REST/openapiv3.json",
    "events-v2": "specs/events-v2/openapiv3.json",
}


#: Operations whose request schema marks, through a shared base (``Tag``, ``Reference``),
#: ``read-only`` the very fields its own request examples send and PagerDuty needs: an
#: integration's ``type`` and its ``service`` reference (``id``, ``type``). Their requests
#: are checked without the read-only rule (every other rule of the schema holds).
READ_ONLY_SENT: frozenset[tuple[str, str]] = frozenset(
    {
        ("/services/{id}/integrations", "post"),
        ("/services/{id}/integrations/{integration_id}", "put"),
    }
)


class SchemaValidator(Protocol):
    def is_valid(self, instance: object) -> bool: ...

    def iter_errors(self, instance: object) -> Any: ...


def spec_bytes(name: SpecName) -> bytes:
    return resources.files(__package__).joinpath(SPEC_FILES[name]).read_bytes()


@functools.cache
def spec(name: SpecName) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(spec_bytes(name))
    return loaded


def operation(name: SpecName, path: str, method: str) -> dict[str, Any]:
    op: dict[str, Any] = spec(name)["paths"][path][method.lower()]
    return op


def _resolve(name: SpecName, node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a top-level ``$ref`` (responses are often references to components)."""
    doc = spec(name)
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _compile(name: SpecName, schema: Mapping[str, Any], *, read: bool) -> SchemaValidator:
    # Root the schema in a copy of the document's components so "#/components/..." resolves.
    rooted = {"allOf": [schema], "components": spec(name)["components"]}
    cls = OAS30ReadValidator if read else OAS30WriteValidator
    validator: SchemaValidator = cls(rooted)
    return validator


@functools.cache
def request_validator(name: SpecName, path: str, method: str) -> SchemaValidator:
    """Validator of the JSON request body of one operation."""
    body = _resolve(name, operation(name, path, method)["requestBody"])
    read = (path, method.lower()) in READ_ONLY_SENT  # the read validator ignores readOnly
    return _compile(name, body["content"]["application/json"]["schema"], read=read)


def _inline(doc: Any, node: Any) -> Any:
    """The schema with every ``$ref`` replaced by its target and ``nullable`` as a type."""
    if isinstance(node, list):
        return [_inline(doc, item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return _inline(doc, target)
    out = {k: _inline(doc, v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


@functools.cache
def fast_request_check(name: SpecName, path: str, method: str) -> Callable[[object], bool]:
    """A compiled yes/no check of a request body, equivalent to :func:`request_validator`."""
    full = request_validator(name, path, method)
    if fastjsonschema is None:
        return full.is_valid
    body = _resolve(name, operation(name, path, method)["requestBody"])
    schema = _inline(spec(name), body["content"]["application/json"]["schema"])
    no_format = {f: (lambda _: True) for f in ("url", "date-time", "email", "uri", "date")}
    compiled = fastjsonschema.compile(schema, formats=no_format)

    def check(instance: object) -> bool:
        try:
            compiled(instance)
        except fastjsonschema.JsonSchemaException:
            return full.is_valid(instance)  # the OAS validator has the last word
        return True

    return check


def declared_statuses(name: SpecName, path: str, method: str) -> set[str]:
    """Response codes the document declares for an operation (``"200"``, ``"5XX"``, ...)."""
    return set(operation(name, path, method)["responses"])


@functools.cache
def response_validator(
    name: SpecName, path: str, method: str, status: str
) -> SchemaValidator | None:
    """Validator of one declared response's JSON body; None when it declares no schema."""
    responses = operation(name, path, method)["responses"]
    key = status if status in responses else f"{status[0]}XX"
    response = _resolve(name, responses[key])
    content = response.get("content", {}).get("application/json")
    if content is None:
        return None
    return _compile(name, content["schema"], read=True)


@functools.cache
def component_validator(name: SpecName, pointer: str) -> SchemaValidator:
    """Validator of any schema in a document, by JSON pointer (``#/components/...``)."""
    return _compile(name, {"$ref": pointer}, read=True)


def error_messages(validator: SchemaValidator, instance: object) -> list[str]:
    """Human-readable schema violations, each prefixed with the JSON path at fault."""
    messages: list[str] = []
    for error in validator.iter_errors(instance):
        where = ".".join(str(p) for p in error.absolute_path)
        messages.append(f"{where}: {error.message}" if where else str(error.message))
    return sorted(messages)
