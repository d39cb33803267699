"""Answering a SensorThings request: the resource path, then the query options, each
compiled to one SQL query (an $expand adds one query per expanded entity).

`read(session, path, params, base)` answers JSON (an entity, a collection, a property)
or `RawValue` for `.../$value`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.orm import Session

from dtbase_core.sta.entities import ENTITY_SETS, EntitySet, Link, id_literal
from dtbase_core.sta.errors import BadQuery, NoEntity

DEFAULT_TOP = 100
MAX_TOP = 1000
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
]
OPTIONS = ("$filter", "$expand", "$select", "$orderby", "$top", "$skip", "$count")
_SEGMENT = re.compile(r"^([A-Za-z]+)(?:\((.*)\))?$")


def _filters() -> ModuleType:
    """`filters`, imported with the first query that needs it: odata_query builds its
    parser's tables on import (over 0.1 s), which every cold start of the app paid."""
    from dtbase_core.sta import filters

    return filters


@dataclass(frozen=True)
class RawValue:
    """A property's bare value (`/$value`), answered as text/plain."""

    text: str


@dataclass
class Options:
    filter: str | None = None
    expand: str | None = None
    select: list[str] | None = None
    orderby: str | None = None
    top: int = DEFAULT_TOP
    skip: int = 0
    count: bool = False

    @classmethod
    def parse(cls, params: dict[str, str]) -> Options:
        unknown = [k for k in params if k.startswith("$") and k not in OPTIONS]
        if unknown:
            raise BadQuery(f"unsupported query option {unknown[0]}")
        options = cls(
            filter=params.get("$filter"),
            expand=params.get("$expand"),
            orderby=params.get("$orderby"),
            top=_count_option(params, "$top", DEFAULT_TOP),
            skip=_count_option(params, "$skip", 0),
        )
        if "$top" in params and options.top > MAX_TOP:
            raise BadQuery(f"$top: at most {MAX_TOP}")
        if "$select" in params:
            options.select = [
                "id" if name.strip() == "@iot.id" else name.strip()
                for name in params["$select"].split(",")
                if name.strip()
            ]
        count = params.get("$count", "false").lower()
        if count not in ("true", "false"):
            raise BadQuery("$count: true or false")
        options.count = count == "true"
        return options


def _count_option(params: dict[str, str], name: str, default: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.strip().isdigit():
        raise BadQuery(f"{name}: a whole number of at least 0, not {text!r}")
    return int(text)


def service_root(base: str) -> dict[str, Any]:
    return {
        "value": [{"name": name, "url": base + name} for name in ENTITY_SETS],
        "serverSettings": {"conformance": CONFORMANCE},
    }


# --- paths --------------------------------------------------------------------------------


@dataclass
class Target:
    """Where a path leads: a set's rows under `conditions`; one of them if `single`."""

    entity: EntitySet
    conditions: list[Any]
    single: bool


def _parse_id(text: str) -> str | int:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    raise BadQuery(f"not an id: {text!r} (a number, or a string in single quotes)")


def read(session: Session, path: str, params: dict[str, str], base: str, url: str) -> Any:
    """Answer GET `url` (`base + path`, without its query string) with the query
    options `params`."""
    segments = [s for s in path.strip("/").split("/") if s]
    if not segments:
        return service_root(base)
    target: Target | None = None
    rest = segments
    while rest:
        segment, rest = rest[0], rest[1:]
        found = _SEGMENT.match(segment)
        if found is None:
            raise NoEntity(f"Nothing at {segment!r}")
        name, raw_id = found.groups()
        if target is None:
            entity = ENTITY_SETS.get(name)
            if entity is None:
                raise NoEntity(f"No entity set {name!r}; the sets are {', '.join(ENTITY_SETS)}")
            target = Target(entity, [], False)
        elif not target.single:
            raise BadQuery(f"{segment!r} follows a collection: name one entity first")
        elif name in target.entity.links:
            parent_row = _one_row(session, target)
            link = target.entity.links[name]
            child = ENTITY_SETS[link.target]
            target = Target(
                child, [lambda src, row=parent_row, ln=link: ln.where(row, src)], not link.many
            )
        elif raw_id is None and name in target.entity.props:
            return _property(session, target, name, rest)
        else:
            raise NoEntity(f"{target.entity.singular} has no property {name!r}")
        if raw_id is not None:
            if target.single:
                raise BadQuery(f"{segment!r}: {name} is one entity, it takes no id")
            ident = _parse_id(raw_id)
            target.conditions.append(lambda src, e=target.entity, i=ident: e.by_id(src, i))
            target.single = True
    assert target is not None
    options = Options.parse(params)
    if target.single:
        row = _one_row(session, target, options)
        return _render(session, target.entity, row, options, base)
    return _collection(session, target, options, base, url, params)


def _property(session: Session, target: Target, name: str, rest: list[str]) -> Any:
    row = _one_row(session, target)
    value = target.entity.props[name].render(row)
    if rest == ["$value"]:
        return RawValue("" if value is None else _text(value))
    if rest:
        raise NoEntity(f"Nothing at {'/'.join(rest)!r} under property {name!r}")
    return {name: value}


def _text(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return str(value.isoformat()).replace("+00:00", "Z")
    return str(value)


# --- queries ------------------------------------------------------------------------------


def _select(target: Target, options: Options | None) -> tuple[sa.Select[*tuple[Any, ...]], Any]:
    """The query of the target's rows, filtered, and its source (for ORDER BY)."""
    entity = target.entity
    source = entity.source().subquery(entity.name.lower())
    if options is not None and options.select is not None:
        unknown = [
            n
            for n in options.select
            if n != "id" and n not in entity.props and n not in entity.links
        ]
        if unknown:
            raise BadQuery(f"$select: {entity.name} have no property {unknown[0]!r}")
    selected = None if options is None else options.select
    columns = sorted(entity.needed_columns(selected))
    query = sa.select(*(source.c[c] for c in columns))
    for condition in target.conditions:
        query = query.where(condition(source))
    if options is not None and options.filter:
        query = query.where(_filters().where(entity, source, options.filter))
    return query, source


def _execute(session: Session, query: Any) -> list[Any]:
    """Rows of the query; an expression the database cannot evaluate (comparing a text
    with a number, say) is the client's: a 400."""
    try:
        with session.begin_nested():
            return list(session.execute(query).mappings())
    except (sa_exc.ProgrammingError, sa_exc.DataError) as exc:
        message = getattr(getattr(exc.orig, "diag", None), "message_primary", None)
        raise BadQuery(f"the query cannot be evaluated: {message or exc.orig}") from None


def _one_row(session: Session, target: Target, options: Options | None = None) -> Any:
    query, _ = _select(target, options)
    rows = _execute(session, query.limit(1))
    if not rows:
        raise NoEntity(f"No such {target.entity.singular}")
    return rows[0]


def _page(session: Session, target: Target, options: Options) -> tuple[list[Any], bool, int | None]:
    """The page of rows, whether more follow, and the count if asked for."""
    query, source = _select(target, options)
    entity = target.entity
    order = _filters().order_by(entity, source, options.orderby) if options.orderby else []
    order += [source.c[c] for c in entity.order]
    rows = _execute(session, query.order_by(*order).offset(options.skip).limit(options.top + 1))
    count = None
    if options.count:
        counted = sa.select(sa.func.count().label("n")).select_from(query.subquery())
        count = _execute(session, counted)[0]["n"]
    return rows[: options.top], len(rows) > options.top, count


def _collection(
    session: Session, target: Target, options: Options, base: str, url: str, params: dict[str, str]
) -> dict[str, Any]:
    rows, more, count = _page(session, target, options)
    reply: dict[str, Any] = {}
    if count is not None:
        reply["@iot.count"] = count
    if more:
        following = {**params, "$top": str(options.top), "$skip": str(options.skip + options.top)}
        reply["@iot.nextLink"] = url + "?" + _query_string(following)
    reply["value"] = [_render(session, target.entity, row, options, base) for row in rows]
    return reply


# --- JSON ---------------------------------------------------------------------------------


def _render(
    session: Session, entity: EntitySet, row: Any, options: Options, base: str
) -> dict[str, Any]:
    selected = options.select
    ident = entity.id_json(row)
    self_link = f"{base}{entity.name}({id_literal(ident)})"
    out: dict[str, Any] = {}
    if selected is None or "id" in selected:
        out["@iot.id"] = ident
        out["@iot.selfLink"] = self_link
    for name, prop in entity.props.items():
        if selected is None or name in selected:
            out[name] = prop.render(row)
    expanded = _expansions(options.expand)
    for name, link in entity.links.items():
        if name in expanded:
            out[name], following = _expand(session, row, link, expanded[name], base)
            if following is not None:
                out[f"{name}@iot.nextLink"] = f"{self_link}/{name}?{following}"
        elif selected is None or name in selected:
            out[f"{name}@iot.navigationLink"] = f"{self_link}/{name}"
    unknown = set(expanded) - set(entity.links)
    if unknown:
        raise BadQuery(f"$expand: {entity.singular} has no navigation property {unknown.pop()!r}")
    return out


def _expansions(text: str | None) -> dict[str, dict[str, str]]:
    """`$expand` as {navigation property: its own options}; `A/B` is `A($expand=B)`."""
    if not text:
        return {}
    found: dict[str, dict[str, str]] = {}
    for item in _filters().split_top_level(text, ","):
        item = item.strip()
        head, paren, inner = item.partition("(")
        path, _, further = head.partition("/")
        if not re.fullmatch(r"[A-Za-z]+", path.strip()):
            raise BadQuery(f"$expand: not a navigation property: {item!r}")
        options: dict[str, str] = {}
        if paren:
            if not inner.endswith(")") or "/" in head:
                raise BadQuery(f"$expand: cannot read {item!r}")
            for option in _filters().split_top_level(inner[:-1], ";"):
                key, eq, value = option.partition("=")
                if not eq:
                    raise BadQuery(f"$expand: {option!r} is not $option=value")
                options[key.strip()] = value.strip()
        if further:
            options["$expand"] = further
        found[path.strip()] = options
    return found


def _expand(
    session: Session, row: Any, link: Link, params: dict[str, str], base: str
) -> tuple[Any, str | None]:
    """The expanded entity (or list), and the query of the list's next page if any."""
    child = ENTITY_SETS[link.target]
    target = Target(child, [lambda src: link.where(row, src)], not link.many)
    options = Options.parse(params)
    if not link.many:
        one = Options(expand=options.expand, select=options.select, top=1)
        rows, _, _ = _page(session, target, one)
        return (_render(session, child, rows[0], options, base) if rows else None), None
    rows, more, _ = _page(session, target, options)
    following = None
    if more:
        following = _query_string(
            {**params, "$top": str(options.top), "$skip": str(options.skip + options.top)}
        )
    return [_render(session, child, r, options, base) for r in rows], following


def _query_string(params: dict[str, str]) -> str:
    return urlencode(params, quote_via=quote, safe="$(),'/:")
