"""Tokens bound to the account, sign-in throttling, list-users, and the security headers
(docs/api.md, Roles and tokens; list-users shows a non-admin only their own email),
over real HTTP against the local host."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy as sa

from dtbase_core.throttle import TOO_MANY
from function_app.http import DATA_CSP, PAGE_CSP
from tests.support import ADMIN_PASSWORD, Api, LocalHost, TestDatabase

INCORRECT = {"detail": "Incorrect email or password"}


def test_a_recreated_user_does_not_revive_old_tokens(admin: Api, live_host: LocalHost) -> None:
    body = {"email": "again@example.com", "password": "same-password"}
    admin.ok("/user/create-user", body, 201)
    old = Api(live_host.api).login(body["email"], body["password"])
    admin.ok("/user/delete-user", {"email": body["email"]})
    admin.ok("/user/create-user", {**body, "is_admin": True}, 201)  # more rights, even
    http = httpx.Client(base_url=live_host.api, timeout=60)
    reply = http.get("/user/me", headers={"Authorization": f"Bearer {old['access_token']}"})
    assert (reply.status_code, reply.json()) == (401, {"detail": "Could not validate credentials"})
    reply = http.post("/auth/refresh", headers={"Authorization": f"Bearer {old['refresh_token']}"})
    assert (reply.status_code, reply.json()) == (401, {"detail": "Could not validate credentials"})
    # The new account's own tokens work.
    new = Api(live_host.api, body["email"], body["password"])
    assert new.get("/user/me").json() == {"email": body["email"], "is_admin": True, "role": "admin"}
    http.close()
    new.close()


def test_list_users_shows_admins_everyone_and_others_themselves(
    admin: Api, live_host: LocalHost
) -> None:
    admin.ok("/user/create-user", {"email": "plain@example.com", "password": "pw"}, 201)
    admin.ok("/user/create-user", {"email": "other@example.com", "password": "pw"}, 201)
    everyone = ["default_user@localhost", "plain@example.com", "other@example.com"]
    assert admin.get("/user/list-users").json() == everyone
    plain = Api(live_host.api, "plain@example.com", "pw")
    assert plain.get("/user/list-users").json() == ["plain@example.com"]
    plain.close()


# --- headers ----------------------------------------------------------------------------------


def _secured(reply: httpx.Response, csp: str) -> None:
    assert reply.headers["x-content-type-options"] == "nosniff", reply.url
    assert reply.headers["x-frame-options"] == "DENY", reply.url
    assert reply.headers["content-security-policy"] == csp, reply.url
    assert "frame-ancestors 'none'" in csp


def test_every_kind_of_reply_carries_the_security_headers(admin: Api, anon: Api) -> None:
    replies = [
        anon.get("/health"),  # 200 without a database transaction
        anon.get("/openapi.json"),
        anon.get("/docs/docs.js"),
        anon.get("/user/list-users"),  # 401
        anon.post("/auth/login", {"email": "x"}),  # 422
        anon.post("/auth/login", {"email": "nobody@example.com", "password": "x"}),  # 401
        anon.get("/no/such/route"),  # 404 from the fallback
        anon.http.get("/user/list-users/", follow_redirects=False),  # 307
        admin.get("/user/list-users"),  # 200 from a transaction
        admin.post("/sensor/list-sensors", {"type_name": "nope"}),  # a domain error
    ]
    assert [r.status_code for r in replies] == [200, 200, 200, 401, 422, 401, 404, 307, 200, 200]
    for reply in replies:
        _secured(reply, DATA_CSP)
    docs = anon.get("/docs")
    assert docs.headers["content-type"].startswith("text/html")
    _secured(docs, PAGE_CSP)


# --- throttling -------------------------------------------------------------------------------


def _login(http: httpx.Client, email: str, password: str, **headers: str) -> httpx.Response:
    return http.post("/auth/login", json={"email": email, "password": password}, headers=headers)


def _outcome(reply: httpx.Response) -> tuple[int, object]:
    return reply.status_code, reply.json()


def test_failed_sign_ins_are_slowed_then_refused_alike_for_any_email(
    live_host: LocalHost, host_factory: Callable[..., LocalHost], clean_db: TestDatabase
) -> None:
    host = host_factory(
        env={
            "DT_LOGIN_ATTEMPTS_PER_EMAIL": "3",
            "DT_LOGIN_ATTEMPTS_PER_ADDRESS": "10",
            "DT_LOGIN_BLOCK_SECONDS": "60",
        }
    )
    http = httpx.Client(base_url=host.api, timeout=60)
    existing, unknown = host.admin_email, "nobody@example.com"
    for email in (existing, unknown):
        # Three free failures, a fourth that blocks the email for 60 s, then 429s.
        outcomes = [_outcome(_login(http, email, "wrong")) for _ in range(4)]
        assert outcomes == [(401, INCORRECT)] * 4
        refused = _login(http, email, "wrong")
        assert _outcome(refused) == (429, {"detail": TOO_MANY})
        assert 50 <= int(refused.headers["retry-after"]) <= 60
    # The reply says nothing about whether the email exists, and the right password does
    # not get through a block either.
    blocked = _login(http, existing, ADMIN_PASSWORD)
    assert _outcome(blocked) == (429, {"detail": TOO_MANY})

    # Time passes (the blocks end): the right password signs in and resets the email's
    # count; the address gets that attempt back.
    with clean_db.engine.begin() as conn:
        conn.execute(sa.text("update login_throttle set blocked_until = now() - interval '1 s'"))
    assert _login(http, existing, ADMIN_PASSWORD).status_code == 200
    assert _login(http, existing, "wrong").status_code == 401  # counting from zero again
    with clean_db.engine.connect() as conn:
        rows = dict(conn.execute(sa.text("select subject, attempts from login_throttle")).all())
    existing_key = "email:" + hashlib.sha256(existing.encode()).hexdigest()
    assert rows[existing_key] == 1 and rows["address:127.0.0.1"] == 9
    assert not any("@" in key for key in rows)  # emails are kept hashed

    # The address: one more attempt is free, the next blocks it, whatever email and
    # X-Forwarded-For the caller sends.
    assert _login(http, "a@example.com", "x").status_code == 401
    assert _login(http, "b@example.com", "x").status_code == 401
    spoofed = _login(http, "c@example.com", "x", **{"X-Forwarded-For": "203.0.113.9"})
    assert _outcome(spoofed) == (429, {"detail": TOO_MANY})
    http.close()


def test_a_flood_of_failed_sign_ins_does_not_slow_other_requests(
    live_host: LocalHost, clean_db: TestDatabase
) -> None:
    """16 parallel bad sign-ins (each an argon2 check) while /health and /openapi.json are
    timed. Any 16 busy clients slow a host on a loaded 2-core machine a little, so the
    allowance is 0.5 s over the same measurement during a flood of cheap requests."""
    http = httpx.Client(base_url=live_host.api, timeout=120)
    assert http.get("/openapi.json").status_code == 200  # built once, then cached

    def timed(path: str) -> float:
        started = time.perf_counter()
        reply = http.get(path)
        assert reply.status_code == 200
        return time.perf_counter() - started

    def measure_during(flood: Callable[[httpx.Client, int], object]) -> list[float]:
        done = 0
        lock = threading.Lock()

        def client(n: int) -> object:
            nonlocal done
            with httpx.Client(base_url=live_host.api, timeout=120) as own:
                result = flood(own, n)
            with lock:
                done += 1
            return result

        timings: list[float] = []
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(client, n) for n in range(16)]
            # Measure while the flood is on, and stop before it ends.
            while len(timings) < 20 and done < 12:
                timings.extend(timed(path) for path in ("/health", "/openapi.json"))
            results = [future.result() for future in futures]
        assert len(timings) >= 10, "the flood ended before anything was measured"
        if flood is bad_login:
            assert results == [401] * 16
        return timings

    def cheap(own: httpx.Client, n: int) -> object:
        return [own.get("/health").status_code for _ in range(10)]

    def bad_login(own: httpx.Client, n: int) -> object:
        return _login(own, f"flood-{n}@example.com", "wrong").status_code

    control = measure_during(cheap)
    limit = 0.5 + max(control)
    during_logins = measure_during(bad_login)
    slow = [round(seconds, 3) for seconds in during_logins if seconds >= limit]
    assert slow == [], (round(limit, 3), slow)
    http.close()
