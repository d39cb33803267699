"""Keys out of logs, run logs and listings (README, "Where this API deliberately
differs from DTBase").

Azure Functions and many APIs take a key as a query value (`?code=`, OpenWeatherMap's
`appid`): such values are shown as `***` wherever a URL is logged or listed. The keys
that this project sends itself travel in headers where the other side allows it
(`x-functions-key`); OpenWeatherMap only takes `appid` in the query, so httpx's own
request log is masked too (`install_log_filter`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

MASK = "***"
# Query names whose values are secrets, compared case-insensitively.
SECRET_NAMES = ("code", "key", "appid", "token", "sig")
# `name=value` in a query string (after `?` or `&`); the value ends at `&`, `#`, a quote,
# whitespace or the end.
_SECRET_QUERY = re.compile(
    r"(?P<head>[?&](?:" + "|".join(SECRET_NAMES) + r")=)(?P<value>[^&#\s'\"<>]*)",
    re.IGNORECASE,
)
# Loggers that print request URLs: httpx logs every request's URL at INFO, httpcore
# traces connections at DEBUG.
URL_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


# URLs whose path is itself a credential (a Slack or Teams webhook), while they are called
# in this context: log lines show them as their origin and `/***` (`secret_url`).
_SECRET_URLS: ContextVar[tuple[str, ...]] = ContextVar("secret_urls", default=())


def mask_text(text: str) -> str:
    """`text` with the value of every secret query parameter replaced by `***`, and any
    URL being called as a secret (`secret_url`) cut to its origin."""
    for url in _SECRET_URLS.get():
        text = text.replace(url, origin_only(url))
    if "=" not in text:
        return text
    return _SECRET_QUERY.sub(lambda m: m["head"] + (MASK if m["value"] else ""), text)


def origin_only(url: str) -> str:
    """`https://hooks.example.com/***`: the URL without its path and query."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return MASK
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/{MASK}"


@contextlib.contextmanager
def secret_url(*urls: str) -> Iterator[None]:
    """Within this block (and the tasks it starts), log lines naming any of `urls` show
    only its origin: webhook URLs carry their credential in the path."""
    token = _SECRET_URLS.set(_SECRET_URLS.get() + tuple(u for u in urls if u))
    try:
        yield
    finally:
        _SECRET_URLS.reset(token)


def is_secret_name(name: str) -> bool:
    return name.lower() in SECRET_NAMES


def mask_json(value: Any) -> Any:
    """A JSON value with every string masked (URLs in a reply: a Durable status URL
    carries its `code`)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, list):
        return [mask_json(item) for item in value]
    if isinstance(value, dict):
        return {key: mask_json(item) for key, item in value.items()}
    return value


def mask_query_parameters(parameters: Any) -> Any:
    """Flat parameters sent as a query string, with secret-named values masked."""
    if not isinstance(parameters, dict):
        return parameters
    return {
        name: MASK if is_secret_name(name) and value is not None else value
        for name, value in parameters.items()
    }


class MaskSecrets(logging.Filter):
    """Formats a record's message once and masks it: the arguments (an httpx.URL) are
    rendered here rather than in a handler that would print the key."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler to report
            return True
        masked = mask_text(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True


_FILTER = MaskSecrets()


def install_log_filter() -> None:
    """Mask secret query values in the records of every logger that logs request URLs.

    A logger's filters see only the records logged on that logger itself (not its
    children's), so each is named. Idempotent."""
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
