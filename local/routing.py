"""Route templates of HTTP-triggered functions, matched as the Functions host does.

Supports `{name}`, constraints `{name:int}` (int, alpha, guid, bool, float, others
ignored), optional `{name?}` and catch-all `{*name}`, case-insensitively. Literal routes
are tried before parameterised ones, and catch-alls last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_CONSTRAINTS = {
    "int": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
    "bool": r"(?:true|false)",
    "float": r"-?\d+(?:\.\d+)?",
}
_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?(\?)?\}")


@dataclass
class CompiledRoute:
    template: str
    regex: re.Pattern[str]
    methods: frozenset[str]  # empty: every method
    function: Any
    rank: tuple[int, int]

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.match(path)
        if found is None:
            return None
        return {k: v for k, v in found.groupdict().items() if v is not None}


def compile_template(template: str) -> tuple[re.Pattern[str], tuple[int, int]]:
    parts, pos, kind = [], 0, 0
    for m in _PARAM.finditer(template):
        parts.append(re.escape(template[pos : m.start()]))
        star, name, constraint, optional = m.groups()
        if star:
            parts.append(f"(?P<{name}>.*)")
            kind = max(kind, 3)
        else:
            body = _CONSTRAINTS.get((constraint or "").lower(), r"[^/]+")
            parts.append(f"(?P<{name}>{body})" + ("?" if optional else ""))
            kind = max(kind, 2 if optional else 1)
        pos = m.end()
    parts.append(re.escape(template[pos:]))
    pattern = "".join(parts)
    # An optional last segment may drop its slash too, as ASP.NET routing allows.
    pattern = re.sub(r"/(\(\?P<\w+>[^)]*\)\?)$", r"(?:/\1)?", pattern)
    return re.compile(f"^{pattern}$", re.IGNORECASE), (kind, -len(template))


def compile_routes(functions: list[Any]) -> list[CompiledRoute]:
    routes = []
    for fn in functions:
        trigger = fn.get_trigger()
        if trigger.get_binding_name() != "httpTrigger":
            continue
        template = (trigger.route or fn.get_function_name()).strip("/")
        regex, rank = compile_template(template)
        methods = frozenset(str(getattr(m, "value", m)).upper() for m in (trigger.methods or []))
        routes.append(CompiledRoute(template, regex, methods, fn, rank))
    return sorted(routes, key=lambda r: r.rank)


def find_route(
    routes: list[CompiledRoute], path: str, method: str
) -> tuple[CompiledRoute, dict[str, str]] | None:
    for route in routes:
        if route.methods and method not in route.methods:
            continue
        params = route.match(path)
        if params is not None:
            return route, params
    return None
