"""What a notification says: the webhook body and the email, from Jinja2 templates.

Templates come from users (a channel may carry its own, e.g. a Slack or Teams JSON shape),
so they run in Jinja2's sandbox: no attribute of Python internals, no I/O. The context is
the delivery's event: `delivery_id`, `alert`, `rule`, `transition` and `at`. The default
webhook body is not a template: it is the event itself, as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from dtbase_core.errors import Invalid

DEFAULT_SUBJECT = (
    "[DTBase] {{ rule.name | default('alert') }}: {{ transition }}"
    "{% if alert.severity %} ({{ alert.severity }}){% endif %}"
)
DEFAULT_TEXT = """\
{{ rule.name | default('An alert') }} is {{ transition }}{% if alert.severity %} \
({{ alert.severity }}){% endif %} at {{ at }}.
{% if alert.message %}
{{ alert.message }}
{% endif %}{% if alert.unique_identifier %}
Sensor: {{ alert.unique_identifier }}{% endif %}{% if alert.measure_name %}
Measure: {{ alert.measure_name }}{% endif %}{% if alert.last_value is not none %}
Last value: {{ alert.last_value }}{% endif %}

Delivery {{ delivery_id }} from DTBase.
"""
DEFAULT_HTML = """\
<p><strong>{{ rule.name | default('An alert') }}</strong> is <strong>{{ transition }}</strong>\
{% if alert.severity %} ({{ alert.severity }}){% endif %} at {{ at }}.</p>
{% if alert.message %}<p>{{ alert.message }}</p>{% endif %}
<ul>{% if alert.unique_identifier %}<li>Sensor: {{ alert.unique_identifier }}</li>{% endif %}\
{% if alert.measure_name %}<li>Measure: {{ alert.measure_name }}</li>{% endif %}\
{% if alert.last_value is not none %}<li>Last value: {{ alert.last_value }}</li>{% endif %}</ul>
<p>Delivery {{ delivery_id }} from DTBase.</p>
"""


class TemplateFailed(Exception):
    """A template would not render (at send time: the delivery fails with this message)."""


@lru_cache(maxsize=2)
def _environment(autoescape: bool) -> SandboxedEnvironment:
    # ChainableUndefined: a field an event lacks renders empty instead of failing the
    # delivery (events of different transitions carry different fields).
    return SandboxedEnvironment(
        autoescape=autoescape, undefined=jinja2.ChainableUndefined, keep_trailing_newline=True
    )


@lru_cache(maxsize=256)
def _compile(source: str, autoescape: bool) -> jinja2.Template:
    return _environment(autoescape).from_string(source)


def _render(source: str, context: Mapping[str, Any], autoescape: bool = False) -> str:
    try:
        return _compile(source, autoescape).render(**context)
    except jinja2.TemplateError as exc:  # syntax, sandbox refusals, undefined misuse
        raise TemplateFailed(f"the channel's template failed: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateFailed(f"the channel's template failed: {exc!r}") from exc


def webhook_body(template: str | None, context: Mapping[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed): the event as JSON, or the channel's template,
    which must render JSON."""
    if template is None:
        return json.dumps(context, separators=(",", ":"), ensure_ascii=False).encode()
    rendered = _render(template, context)
    try:
        json.loads(rendered)
    except ValueError as exc:
        raise TemplateFailed(f"the channel's template did not render JSON: {exc}") from None
    return rendered.encode()


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


def email_content(template: str | None, context: Mapping[str, Any]) -> EmailContent:
    """The email: a subject, and the text (the channel's template, or the default) with
    its HTML form (the default's, or the channel's text escaped in a <pre>)."""
    subject = " ".join(_render(DEFAULT_SUBJECT, context).split())[:250]
    if template is None:
        return EmailContent(
            subject, _render(DEFAULT_TEXT, context), _render(DEFAULT_HTML, context, True)
        )
    text = _render(template, context)
    return EmailContent(subject, text, _render("<pre>{{ text }}</pre>", {"text": text}, True))


def sample_context() -> dict[str, Any]:
    """A representative event, for checking a template when a channel is saved."""
    return {
        "delivery_id": 1,
        "alert": {
            "id": 1,
            "rule_name": "sample",
            "unique_identifier": "sensor-1",
            "measure_name": "temperature",
            "state": "firing",
            "severity": "warning",
            "started_at": "2026-01-01T00:00:00Z",
            "resolved_at": None,
            "acknowledged_by": None,
            "last_value": 31.5,
            "message": "temperature above 30",
        },
        "rule": {"name": "sample", "kind": "threshold", "severity": "warning"},
        "transition": "firing",
        "at": "2026-01-01T00:00:00Z",
    }


def check_template(kind: str, template: str) -> None:
    """Refuse (422 naming `template`) a template that does not compile, or that fails or
    (for a webhook) renders no JSON on a sample event."""
    try:
        _environment(False).parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise Invalid(
            f"template: not a valid Jinja2 template (line {exc.lineno}: {exc.message})",
            loc=("body", "template"),
        ) from None
    try:
        if kind == "webhook":
            webhook_body(template, sample_context())
        else:
            email_content(template, sample_context())
    except TemplateFailed as exc:
        raise Invalid(f"template: {exc} (on a sample event)", loc=("body", "template")) from None
