"""A stand-in for a person's web browser in the interactive sign-in test: opens the sign-in
URL (trusting the test CA), and submits the form Entra ID answers with (response_mode
form_post) to MSAL's listener on localhost, as a browser would.

Usage: python tests/entra_browser.py <ca bundle> <url>
"""

from __future__ import annotations

import ssl
import sys
from html.parser import HTMLParser

import httpx


class FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.action = found.get("action", "")
        elif tag == "input" and "name" in found:
            self.fields[found["name"]] = found.get("value", "")


def main(ca_bundle: str, url: str) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=ca_bundle), timeout=30) as http:
        reply = http.get(url)
    if reply.status_code in (301, 302, 303):
        httpx.get(reply.headers["location"], timeout=30)
        return
    form = FormReader()
    form.feed(reply.text)
    httpx.post(form.action, data=form.fields, timeout=30)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
