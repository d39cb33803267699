"""A service's `parameters_schema`: a JSON Schema its parameters must satisfy (docs/api.md,
Parameter schemas), checked with the `jsonschema` library.

The schema itself is checked when it is registered (against its own dialect's metaschema:
`$schema` if it names one, else the latest draft); parameter sets and run parameters are
checked against it. Every error is a 422 naming where in the parameters it is
(`parameters.days: -3 is less than the minimum of 1`) and the service whose schema said so.
A service without a schema takes any parameters, as DTBase's services do.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError, ValidationError, best_match

from dtbase_core.errors import Invalid

Loc = tuple[str | int, ...]
# One error is enough to act on; a few help to fix a set in one go.
MAX_ERRORS = 5


def _validator_class(schema: Any) -> Any:
    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)


def _path(base: str, parts: Any) -> str:
    return ".".join([base, *(str(part) for part in parts)])


def check_schema(schema: Any, loc: Loc = ("body", "parameters_schema")) -> None:
    """Invalid (422) unless `schema` is a JSON Schema: an object (or a boolean, which
    JSON Schema allows) valid against its dialect's metaschema."""
    if not isinstance(schema, dict | bool):
        raise Invalid("parameters_schema: a JSON Schema is an object", loc=loc)
    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as exc:
        where = _path("parameters_schema", exc.path)
        raise Invalid(
            f"{where}: not a valid JSON Schema: {exc.message}", loc=(*loc, *exc.path)
        ) from exc


def validate(
    schema: Any,
    parameters: Any,
    *,
    service_name: str,
    loc: Loc = ("body", "parameters"),
    source: str | None = None,
) -> None:
    """Invalid (422) naming each failing path in `parameters` (at most MAX_ERRORS), with
    `loc` (where the parameters are in the request) extended by that path. `source` says
    where the parameters came from when the request did not carry them (a parameter set):
    `loc` then names the field that chose them, as is."""
    if schema is None:
        return
    # `format` stays an annotation, as JSON Schema 2020-12 has it by default.
    validator = _validator_class(schema)(schema)
    errors = sorted(validator.iter_errors(parameters), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    whose = f"the parameters schema of service '{service_name}'"
    if source:
        whose = f"{source}, against {whose}"

    def item(error: ValidationError) -> tuple[Loc, str]:
        # For an anyOf / oneOf, the branch that fits the value best ("91 is greater than
        # the maximum of 90", not "91 is not valid under any of the given schemas").
        error = best_match([error]) or error
        path = list(error.absolute_path)
        where = loc if source else (*loc, *path)
        return where, f"{_path('parameters', path)}: {error.message} ({whose})"

    first, *rest = (item(error) for error in errors[:MAX_ERRORS])
    raise Invalid(first[1], loc=first[0], more=rest)
