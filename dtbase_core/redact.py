"""Keys out of logs, run logs and listings (README, "Where this API deliberately
differs from DTBase").

Azure Functions and many APIs take a key as a query value (`?code=`, OpenWeatherMap's
`appid`): such values are shown as `***` wherever a URL is logged or listed. The keys
that this project sends itself travel in headers where the other side allows it
(`x-functions-key`); OpenWeatherMap only takes `appid` in the query, so httpx's own
request log is masked too (`install_log_filter`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

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


def mask_text(text: str) -> str:
    """`text` with the value of every secret query parameter replaced by `***`."""
    if "=" not in text:
        return text
    return _SECRET_QUERY.sub(lambda m: m["head"] + (MASK if m["value"] else ""), text)


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
