"""/auth and /user over HTTP: DTBase's contract, with docs/api.md, Roles and
tokens; The default user."""

from __future__ import annotations

import time

import jwt

from tests.support import ADMIN_PASSWORD, JWT_SECRET, Api


def test_login_and_list_users(admin: Api) -> None:
    assert admin.get("/user/list-users").json() == ["default_user@localhost"]


def test_login_wrong_password_and_unknown_email(anon: Api) -> None:
    for body in (
        {"email": "default_user@localhost", "password": "wrong"},
        {"email": "nobody@example.com", "password": "x"},
    ):
        reply = anon.post("/auth/login", body)
        assert reply.status_code == 401
        assert reply.json() == {"detail": "Incorrect email or password"}


def test_login_validation(anon: Api) -> None:
    assert anon.post("/auth/login", {"email": "a"}).status_code == 422
    reply = anon.post(
        "/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["type"] == "json_invalid"


def test_token_claims(admin: Api) -> None:
    claims = jwt.decode(admin.token, JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "default_user@localhost"
    assert claims["token_type"] == "access"
    assert {"exp", "iat", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 3600


def test_auth_errors(admin: Api, anon: Api) -> None:
    reply = anon.get("/user/list-users")
    assert reply.status_code == 401
    assert reply.json() == {"detail": "Not authenticated"}
    assert reply.headers["www-authenticate"] == "Bearer"

    reply = anon.get("/user/list-users", headers={"Authorization": "Bearer garbage"})
    assert (reply.status_code, reply.json()["detail"]) == (401, "Could not validate credentials")
    assert "www-authenticate" not in reply.headers

    now = int(time.time())
    expired = jwt.encode(
        {
            "sub": "default_user@localhost",
            "token_type": "access",
            "exp": now - 10,
            "iat": now - 100,
            "jti": "x",
            "ver": 0,
        },
        JWT_SECRET,
        algorithm="HS256",
    )
    reply = anon.get("/user/list-users", headers={"Authorization": f"Bearer {expired}"})
    assert reply.json()["detail"] == "Token has expired"

    # Claims are checked strictly: a token lacking jti is refused even with a good signature.
    no_jti = jwt.encode(
        {
            "sub": "default_user@localhost",
            "token_type": "access",
            "exp": now + 100,
            "iat": now,
            "ver": 0,
        },
        JWT_SECRET,
        algorithm="HS256",
    )
    reply = anon.get("/user/list-users", headers={"Authorization": f"Bearer {no_jti}"})
    assert reply.json()["detail"] == "Could not validate credentials"

    forged = jwt.encode(
        {
            "sub": "default_user@localhost",
            "token_type": "access",
            "exp": now + 100,
            "iat": now,
            "jti": "y",
            "ver": 0,
        },
        "another-secret-" + "y" * 30,
        algorithm="HS256",
    )
    reply = anon.get("/user/list-users", headers={"Authorization": f"Bearer {forged}"})
    assert reply.json()["detail"] == "Could not validate credentials"

    # Lower-case scheme works as in DTBase.
    assert (
        anon.get("/user/list-users", headers={"Authorization": f"bearer {admin.token}"}).status_code
        == 200
    )


def test_refresh(admin: Api, anon: Api) -> None:
    tokens = admin.login("default_user@localhost", ADMIN_PASSWORD)
    reply = anon.post(
        "/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    assert reply.status_code == 200
    assert set(reply.json()) == {"access_token", "refresh_token"}
    wrong = anon.post(
        "/auth/refresh", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "Token of wrong type")
    wrong = anon.get(
        "/user/list-users", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "Token of wrong type")
    assert anon.post("/auth/refresh").json()["detail"] == "Not authenticated"


def test_create_delete_change_password(admin: Api, live_host) -> None:
    assert admin.ok("/user/create-user", {"email": "a@example.com", "password": "pw1"}, 201) == {
        "detail": "User created"
    }
    reply = admin.post("/user/create-user", {"email": "a@example.com", "password": "pw1"})
    assert (reply.status_code, reply.json()) == (409, {"detail": "User already exists"})
    assert admin.get("/user/list-users").json() == ["default_user@localhost", "a@example.com"]

    user = Api(live_host.api, "a@example.com", "pw1")
    assert user.get("/user/me").json() == {
        "email": "a@example.com",
        "is_admin": False,
        "role": "editor",
    }
    old_token = user.token
    assert user.ok("/user/change-password", {"email": "a@example.com", "password": "pw2"}) == {
        "detail": "Password changed"
    }
    # A changed password ends earlier tokens (docs/api.md, Roles and tokens).
    assert user.get("/user/me").json() == {"detail": "Could not validate credentials"}
    user.login("a@example.com", "pw2")
    assert user.token != old_token and user.get("/user/me").status_code == 200

    assert admin.ok("/user/delete-user", {"email": "a@example.com"}) == {"detail": "User deleted"}
    # A deleted user's token stops working.
    assert user.get("/user/me").json() == {"detail": "Could not validate credentials"}
    reply = admin.post("/user/delete-user", {"email": "a@example.com"})
    assert (reply.status_code, reply.json()) == (400, {"detail": "User doesn't exist"})
    reply = admin.post("/user/change-password", {"email": "ghost@example.com", "password": "x"})
    assert (reply.status_code, reply.json()) == (400, {"detail": "User doesn't exist"})


def test_admin_only_rules(admin: Api, live_host) -> None:
    admin.ok("/user/create-user", {"email": "plain@example.com", "password": "pw"}, 201)
    admin.ok(
        "/user/create-user", {"email": "boss@example.com", "password": "pw", "is_admin": True}, 201
    )
    plain = Api(live_host.api, "plain@example.com", "pw")
    boss = Api(live_host.api, "boss@example.com", "pw")
    assert boss.get("/user/me").json()["is_admin"] is True

    for path, body in (
        ("/user/create-user", {"email": "x@example.com", "password": "pw"}),
        ("/user/delete-user", {"email": "boss@example.com"}),
        ("/user/change-password", {"email": "boss@example.com", "password": "hijack"}),
    ):
        reply = plain.post(path, body)
        assert reply.status_code == 403, (path, reply.text)
        assert "admin" in reply.json()["detail"]
    # Nothing was written by the refused calls.
    assert admin.get("/user/list-users").json() == [
        "default_user@localhost",
        "plain@example.com",
        "boss@example.com",
    ]
    # Anyone may change their own password; an admin may change anyone's.
    plain.ok("/user/change-password", {"email": "plain@example.com", "password": "pw2"})
    boss.ok("/user/change-password", {"email": "plain@example.com", "password": "pw3"})
    plain.login("plain@example.com", "pw3")
    # Every other endpoint is open to a plain user.
    assert plain.get("/user/list-users").status_code == 200


def test_invalid_email_is_422(admin: Api) -> None:
    reply = admin.post("/user/create-user", {"email": "not an email", "password": "pw"})
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "email"]
    assert admin.get("/user/list-users").json() == ["default_user@localhost"]
