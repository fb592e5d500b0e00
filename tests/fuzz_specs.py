"""Requests generated from the ACS OpenAPI (swagger 2.0) specs, for the fuzz stage.

Every operation of a spec becomes a hypothesis strategy of requests: path parameters
(real ids the test created, well-formed ones and arbitrary text), query parameters
(supported and arbitrary api-versions, paging), a body drawn from the operation's schema
or an arbitrary JSON value (wrong types, unknown fields), and a Content-Type. This is a
small schema-to-strategy walk, not a general OpenAPI library: it covers what these specs use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

SPECS = Path(__file__).parent / "specs"

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=10,
)
DATES = st.datetimes(timezones=st.just(None)).map(lambda d: d.isoformat() + "Z") | st.text(max_size=30)
SIGNED = st.sampled_from([True] * 9 + [False])  # mostly past authentication, to reach the rules
CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json", "application/merge-patch+json", "text/plain", "", "application/xml"]
)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]
    parameters: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    body: bytes
    content_type: str
    signed: bool


def operations(spec_file: str) -> list[Operation]:
    spec = json.loads((SPECS / spec_file).read_text())
    found = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            parameters = [_resolve(spec, p) for p in operation.get("parameters", [])]
            found.append(Operation(method.upper(), path, spec, parameters))
    return found


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    for part in ref[2:].split("/"):
        spec = spec[part]
    return spec


def _from_schema(spec: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    schema = _resolve(spec, schema)
    if "$ref" in schema or depth > 4:  # a reference into another file (the common error types)
        return JSON_VALUES
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | st.text(max_size=12)
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "object":
        properties = {name: _from_schema(spec, sub, depth + 1) for name, sub in schema.get("properties", {}).items()}
        required = {name: properties.pop(name) for name in schema.get("required", []) if name in properties}
        shaped = st.fixed_dictionaries(required, optional=properties)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            keys = st.sampled_from(["8:acs:fuzz_1", "8:acs:fuzz_2"]) | st.text(max_size=40)
            values = _from_schema(spec, extra, depth + 1) | st.none()
            return st.dictionaries(keys, values, max_size=4) | shaped
        return shaped
    if kind == "array":
        return st.lists(_from_schema(spec, schema.get("items", {}), depth + 1), max_size=4)
    if kind == "string":
        return DATES if schema.get("format") == "date-time" else st.text(max_size=40)
    if kind == "integer":
        return st.integers(min_value=-(2**70), max_value=2**70)
    if kind == "boolean":
        return st.booleans()
    return JSON_VALUES


def requests(operation: Operation, ids: list[str], versions: list[str]) -> st.SearchStrategy[Request]:
    """Requests for ``operation``; ``ids`` are real identifiers, ``versions`` supported api-versions."""
    path_values = st.sampled_from(ids) | st.from_regex(r"[0-9]{1,20}", fullmatch=True) | st.text(max_size=30)
    query = st.fixed_dictionaries(
        {"api-version": st.sampled_from(versions) | st.text(max_size=20)},
        optional={"maxpagesize": st.text(max_size=6), "$skipToken": st.text(max_size=20)},
    )
    body_schemas = [p["schema"] for p in operation.parameters if p.get("in") == "body"]
    body = _from_schema(operation.spec, body_schemas[0]) | JSON_VALUES if body_schemas else st.none()
    names = [p["name"] for p in operation.parameters if p.get("in") == "path"]

    @st.composite
    def build(draw: st.DrawFn) -> Request:
        path = operation.path
        for name in names:
            path = path.replace(f"{{{name}}}", quote(draw(path_values), safe=""))
        value = draw(body)
        content = b"" if value is None else json.dumps(value).encode()
        target = f"{path}?{urlencode(draw(query))}"
        return Request(operation.method, target, content, draw(CONTENT_TYPES), draw(SIGNED))

    return build()
