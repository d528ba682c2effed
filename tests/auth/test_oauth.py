"""OAuth 2 over HTTP: client credentials, authorization code with PKCE, discovery, bearer checks."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from typer.testing import CliRunner

from benhan.api import errors
from benhan.api.security import bearer_actor
from benhan.auth import accounts, clients, oauth, tokens
from benhan.auth.accounts import AuthError
from benhan.auth.commands_oauth import clients_app, keys_app
from benhan.auth.sessions import create_session
from benhan.fhir.outcome import FhirError, Issue
from benhan.store.database import Store
from benhan.store.schema import resource
from benhan.web.session import SESSION_COOKIE
from tests.auth.conftest import Clock
from tests.auth.test_tokens import parts

AUD = "http://testserver/fhir"
APP_URI = "https://app.example.vn/callback"
FACILITY = "27001"


# ---- helpers ---------------------------------------------------------------------------------


def register(store: Store, **kw: Any) -> tuple[clients.Client, str | None]:
    values = {"name": "HIS Bệnh viện", "role_code": "system-integrator", "facility": FACILITY, **kw}
    with store.begin() as conn:
        return clients.register_client(conn, **values)


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def post_token(http: TestClient, data: dict[str, str], **kw: Any) -> Response:
    return http.post("/oauth/token", data=data, **kw)


def machine_token(http: TestClient, store: Store, scope: str = "") -> tuple[str, clients.Client]:
    app, secret = register(store)
    assert secret
    r = post_token(
        http,
        {"grant_type": "client_credentials", "scope": scope},
        headers=basic(app.client_id, secret),
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"], app


def actor_of(store: Store, token: str) -> Any:
    with store.read() as conn:
        return bearer_actor(conn, f"Bearer {token}", address="10.0.0.9", audience=AUD)


def audit_count(store: Store) -> int:
    with store.read() as conn:
        q = sa.select(sa.func.count()).where(resource.c.rtype == "AuditEvent")
        return int(conn.scalar(q) or 0)


def person(store: Store, role: str = "doctor", **kw: Any) -> accounts.Account:
    with store.begin() as conn:
        return accounts.create_account(
            conn,
            username=f"u{secrets.token_hex(4)}",
            password="mật-khẩu-dài-đủ-10",
            role_code=role,
            facility=FACILITY,
            display_name="Bác sĩ Lan",
            **kw,
        )


def sign_in(http: TestClient, store: Store, acc: accounts.Account) -> str:
    """A page session for `acc`, as the sign-in page would make; returns its CSRF token."""
    with store.begin() as conn:
        value, csrf = create_session(conn, acc.id, None)
    http.cookies.set(SESSION_COOKIE, value)
    return csrf


VERIFIER = "v" * 20 + secrets.token_urlsafe(40)


def authorize_params(app: clients.Client, **over: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": APP_URI,
        "scope": "user/Patient.rs user/Observation.rs launch/patient fhirUser openid",
        "state": "st-123",
        "code_challenge": oauth.s256(VERIFIER),
        "code_challenge_method": "S256",
        "aud": AUD,
    }
    params.update(over)
    return params


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(http: TestClient, app: clients.Client, csrf: str, **over: str) -> str:
    params = authorize_params(app, **over)
    page = http.get("/oauth/authorize", params=params)
    assert page.status_code == 200, page.text
    r = http.post(
        "/oauth/authorize",
        data={**params, "csrf": csrf, "decision": "allow"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert location.startswith(APP_URI + "?")
    q = query_of(location)
    assert q["state"] == "st-123"
    return q["code"]


def redeem(http: TestClient, app: clients.Client, code: str, **over: str) -> Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": APP_URI,
        "code_verifier": VERIFIER,
        "client_id": app.client_id,
    }
    data.update(over)
    return post_token(http, data)


@pytest.fixture
def client(client: TestClient) -> TestClient:
    """The app without the shared fixture's bearer token: these tests get their own."""
    client.headers.pop("Authorization", None)
    return client


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    from benhan.fhir import primitives

    c = Clock(primitives.now())
    monkeypatch.setattr(primitives, "now", c)
    return c


@pytest.fixture
def doctor_app(store: Store) -> clients.Client:
    app, secret = register(
        store, name="Ứng dụng Bác sĩ", role_code="doctor", redirect_uris=[APP_URI], public=True
    )
    assert secret is None
    return app


# ---- client credentials ----------------------------------------------------------------------


def test_client_credentials(client: TestClient, store: Store) -> None:
    app, secret = register(store)
    assert secret and app.client_id
    r = post_token(
        client,
        {"grant_type": "client_credentials", "scope": "system/Patient.rs system/Observation.rs"},
        headers=basic(app.client_id, secret),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["scope"] == "system/Patient.rs system/Observation.rs"
    assert r.headers["cache-control"] == "no-store"
    with store.read() as conn:
        claims = tokens.verify(conn, body["access_token"], audience=AUD)
    assert claims["sub"] == f"client:{app.client_id}"
    assert (claims["iss"], claims["facility"], claims["role"]) == (
        "http://testserver",
        FACILITY,
        "system-integrator",
    )
    actor = actor_of(store, body["access_token"])
    assert (actor.kind, actor.role.code, actor.facility) == (
        "client",
        "system-integrator",
        FACILITY,
    )
    assert actor.scopes.allows("Patient", "s") and not actor.scopes.allows("Patient", "c")
    assert actor.session == claims["jti"] and actor.address == "10.0.0.9"


def test_client_secret_post_and_all_it_may_have(client: TestClient, store: Store) -> None:
    app, secret = register(store)
    assert secret
    r = post_token(
        client,
        {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": secret},
    )
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "system/*.cruds"  # no scope asked: everything it may have


def test_wrong_secret(client: TestClient, store: Store) -> None:
    app, secret = register(store)
    before = audit_count(store)
    r = post_token(
        client, {"grant_type": "client_credentials"}, headers=basic(app.client_id, secret + "x")
    )
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert " / " in r.json()["error_description"]  # Vietnamese / English
    assert r.headers["www-authenticate"].startswith("Basic")
    assert "access_token" not in r.json()
    assert audit_count(store) == before + 1  # the refusal is in the audit trail


def test_unknown_client(client: TestClient) -> None:
    r = post_token(client, {"grant_type": "client_credentials"}, headers=basic("nobody", "x" * 40))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = post_token(client, {"grant_type": "client_credentials", "client_id": "nobody"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_disabled_client_is_refused_and_its_tokens_stop(client: TestClient, store: Store) -> None:
    token, app = machine_token(client, store)
    assert actor_of(store, token).kind == "client"
    with store.begin() as conn:
        clients.disable_client(conn, app.client_id)
    with pytest.raises(FhirError) as caught:
        actor_of(store, token)
    assert caught.value.status == 401


def test_disabled_client_cannot_get_a_token(client: TestClient, store: Store) -> None:
    app, secret = register(store)
    assert secret
    with store.begin() as conn:
        clients.disable_client(conn, app.client_id)
    r = post_token(
        client, {"grant_type": "client_credentials"}, headers=basic(app.client_id, secret)
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_scope_wider_than_allowed_is_cut(client: TestClient, store: Store) -> None:
    app, secret = register(store, name="Cổng giám định BHYT", role_code="insurance-assessor")
    assert secret
    asked = "system/Claim.cruds system/Patient.rs system/AuditEvent.rs system/ClaimResponse.c"
    r = post_token(
        client,
        {"grant_type": "client_credentials", "scope": asked},
        headers=basic(app.client_id, secret),
    )
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "system/Claim.rs system/Patient.rs system/ClaimResponse.c"
    actor = actor_of(store, r.json()["access_token"])
    assert actor.role.code == "insurance-assessor"
    assert actor.scopes.allows("Claim", "r") and not actor.scopes.allows("Claim", "c")
    assert not actor.scopes.allows("AuditEvent", "r")


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        ({"grant_type": "client_credentials", "scope": "user/Patient.rs"}, 400, "invalid_scope"),
        ({"grant_type": "client_credentials", "scope": "system/Nope"}, 400, "invalid_scope"),
        ({"grant_type": "client_credentials", "scope": "launch/patient"}, 400, "invalid_scope"),
        (
            {"grant_type": "client_credentials", "scope": "system/AuditEvent.rs"},
            400,
            "invalid_scope",
        ),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({}, 400, "invalid_request"),
    ],
)
def test_token_request_errors(
    client: TestClient, store: Store, data: dict[str, str], status: int, error: str
) -> None:
    app, secret = register(store)
    assert secret
    r = post_token(client, data, headers=basic(app.client_id, secret))
    assert (r.status_code, r.json()["error"]) == (status, error), r.text


def test_token_request_must_be_a_form_without_repeats(client: TestClient, store: Store) -> None:
    app, secret = register(store)
    assert secret
    r = client.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    r = client.post(
        "/oauth/token",
        content="grant_type=client_credentials&scope=system/Patient.rs&scope=system/*.cruds",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            **basic(app.client_id, secret),
        },
    )
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    both = {"grant_type": "client_credentials", "client_secret": secret}
    r = post_token(client, both, headers=basic(app.client_id, secret))
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")


def test_public_client_cannot_use_client_credentials(
    client: TestClient, doctor_app: clients.Client
) -> None:
    r = post_token(client, {"grant_type": "client_credentials", "client_id": doctor_app.client_id})
    assert (r.status_code, r.json()["error"]) == (400, "unauthorized_client")


def test_registration_rules(store: Store) -> None:
    with pytest.raises(AuthError, match="PKCE"):
        register(store, role_code="doctor")  # people's roles act through a person
    with pytest.raises(AuthError):
        register(store, role_code="system-integrator", public=True, redirect_uris=[APP_URI])
    with pytest.raises(AuthError):
        register(store, role_code="doctor", public=True)  # no redirect URI
    with pytest.raises(AuthError):
        register(store, role_code="doctor", public=True, redirect_uris=["http://evil.example/cb"])
    with pytest.raises(AuthError):
        register(store, role_code="doctor", public=True, redirect_uris=[APP_URI + "#x"])
    with pytest.raises(AuthError):
        register(store, role_code="insurance-assessor", scopes="system/AuditEvent.rs")
    with pytest.raises(AuthError):
        register(store, role_code="no-such-role")
    local, _ = register(
        store, role_code="doctor", public=True, redirect_uris=["http://127.0.0.1:8765/cb"]
    )
    assert local.redirect_uris == ("http://127.0.0.1:8765/cb",)
    doh, secret = register(store, role_code="doh-analyst", facility="")
    assert secret and doh.scopes.startswith("system/")


# ---- authorization code with PKCE -------------------------------------------------------------


def test_authorization_code_flow(
    client: TestClient, store: Store, doctor_app: clients.Client
) -> None:
    acc = person(store, practitioner="bs-lan")
    csrf = sign_in(client, store, acc)
    page = client.get("/oauth/authorize", params=authorize_params(doctor_app))
    assert page.status_code == 200
    assert "Ứng dụng Bác sĩ" in page.text and csrf in page.text
    assert page.headers["x-frame-options"] == "DENY"  # no clickjacking of the consent
    assert "xin quyền truy cập" in page.text and "Cho phép" in page.text
    en = client.get(
        "/oauth/authorize", params=authorize_params(doctor_app), headers={"Accept-Language": "en"}
    )
    assert "asks for access" in en.text and "read, search:" in en.text

    code = get_code(client, doctor_app, csrf)
    r = redeem(client, doctor_app, code)
    assert r.status_code == 200, r.text
    body = r.json()
    # openid is not offered (no id_token); the data scopes are the doctor's
    assert body["scope"] == "user/Patient.rs user/Observation.rs launch/patient fhirUser"
    assert body["fhirUser"] == f"{AUD}/Practitioner/bs-lan"
    assert "patient" not in body
    with store.read() as conn:
        claims = tokens.verify(conn, body["access_token"], audience=AUD)
    assert claims["sub"] == f"account:{acc.id}" and claims["client_id"] == doctor_app.client_id
    actor = actor_of(store, body["access_token"])
    assert (actor.kind, actor.role.code, actor.account) == ("user", "doctor", acc.id)
    assert actor.scopes.allows("Observation", "r") and not actor.scopes.allows("Observation", "c")


def test_replayed_code_is_refused(
    client: TestClient, store: Store, doctor_app: clients.Client
) -> None:
    csrf = sign_in(client, store, person(store))
    code = get_code(client, doctor_app, csrf)
    assert redeem(client, doctor_app, code).status_code == 200
    again = redeem(client, doctor_app, code)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_wrong_verifier(client: TestClient, store: Store, doctor_app: clients.Client) -> None:
    csrf = sign_in(client, store, person(store))
    code = get_code(client, doctor_app, csrf)
    r = redeem(client, doctor_app, code, code_verifier="w" * 43)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    # one try only: the right verifier afterwards does not revive the code
    assert redeem(client, doctor_app, code).json()["error"] == "invalid_grant"


def test_expired_code(
    client: TestClient, store: Store, doctor_app: clients.Client, clock: Clock
) -> None:
    csrf = sign_in(client, store, person(store))
    code = get_code(client, doctor_app, csrf)
    clock.advance(oauth.CODE_TTL_S + 1)
    r = redeem(client, doctor_app, code)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")


def test_code_within_its_minute(
    client: TestClient, store: Store, doctor_app: clients.Client, clock: Clock
) -> None:
    csrf = sign_in(client, store, person(store))
    code = get_code(client, doctor_app, csrf)
    clock.advance(oauth.CODE_TTL_S - 1)
    assert redeem(client, doctor_app, code).status_code == 200


def test_redirect_uri_mismatch_at_token(
    client: TestClient, store: Store, doctor_app: clients.Client
) -> None:
    csrf = sign_in(client, store, person(store))
    code = get_code(client, doctor_app, csrf)
    r = redeem(client, doctor_app, code, redirect_uri=APP_URI + "/other")
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")


def test_code_of_another_client(
    client: TestClient, store: Store, doctor_app: clients.Client
) -> None:
    other, _ = register(store, role_code="doctor", public=True, redirect_uris=[APP_URI])
    csrf = sign_in(client, store, person(store))
    code = get_code(client, doctor_app, csrf)
    assert redeem(client, other, code).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "over",
    [
        {"code_challenge_method": "plain"},
        {"code_challenge_method": ""},
        {"code_challenge": "too-short"},
        {"response_type": "token"},
        {"aud": "https://other.example/fhir"},
        {"scope": "system/*.cruds"},
        {"scope": "user/Patient.xyz"},
        {"scope": "user/AuditEvent.rs"},  # nothing a doctor may have
    ],
)
def test_bad_authorization_requests_go_back_to_the_app(
    client: TestClient, store: Store, doctor_app: clients.Client, over: dict[str, str]
) -> None:
    sign_in(client, store, person(store))
    r = client.get(
        "/oauth/authorize", params=authorize_params(doctor_app, **over), follow_redirects=False
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith(APP_URI + "?")
    q = query_of(r.headers["location"])
    assert q["error"] in {"invalid_request", "invalid_scope", "unsupported_response_type"}
    assert q["state"] == "st-123" and "code" not in q


def test_plain_pkce_is_refused(
    client: TestClient, store: Store, doctor_app: clients.Client
) -> None:
    sign_in(client, store, person(store))
    params = authorize_params(doctor_app, code_challenge_method="plain", code_challenge=VERIFIER)
    r = client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert query_of(r.headers["location"])["error"] == "invalid_request"


@pytest.mark.parametrize(
    "over", [{"client_id": "no-such-app"}, {"redirect_uri": "https://evil.example/steal"}]
)
def test_untrusted_client_or_redirect_gets_a_page(
    client: TestClient, store: Store, doctor_app: clients.Client, over: dict[str, str]
) -> None:
    csrf = sign_in(client, store, person(store))
    params = authorize_params(doctor_app, **over)
    for r in (
        client.get("/oauth/authorize", params=params, follow_redirects=False),
        client.post(
            "/oauth/authorize",
            data={**params, "csrf": csrf, "decision": "allow"},
            follow_redirects=False,
        ),
    ):
        assert r.status_code == 400
        assert "location" not in r.headers  # never sent to an unregistered address
        assert "Không thể cấp quyền" in r.text


def test_deny(client: TestClient, store: Store, doctor_app: clients.Client) -> None:
    csrf = sign_in(client, store, person(store))
    data = {**authorize_params(doctor_app), "csrf": csrf, "decision": "deny"}
    r = client.post("/oauth/authorize", data=data, follow_redirects=False)
    assert r.status_code == 303
    q = query_of(r.headers["location"])
    assert q["error"] == "access_denied" and q["state"] == "st-123" and "code" not in q


def test_consent_needs_the_csrf_token(
    client: TestClient, store: Store, doctor_app: clients.Client
) -> None:
    sign_in(client, store, person(store))
    data = {**authorize_params(doctor_app), "csrf": "forged", "decision": "allow"}
    r = client.post("/oauth/authorize", data=data, follow_redirects=False)
    assert r.status_code == 403 and "location" not in r.headers


def test_signed_out_goes_to_the_sign_in_page(
    client: TestClient, doctor_app: clients.Client
) -> None:
    r = client.get("/oauth/authorize", params=authorize_params(doctor_app), follow_redirects=False)
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("/login?")
    back = query_of(location)["next"]  # after signing in, the same question again
    assert back.startswith("/oauth/authorize?")
    assert query_of(back) == authorize_params(doctor_app)
    r = client.post(
        "/oauth/authorize",
        data={**authorize_params(doctor_app), "decision": "allow"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_no_scope_asked_gets_what_the_app_may_have(
    client: TestClient, store: Store, doctor_app: clients.Client
) -> None:
    csrf = sign_in(client, store, person(store))
    body = redeem(client, doctor_app, get_code(client, doctor_app, csrf, scope="")).json()
    granted = body["scope"].split()
    assert "user/Condition.cruds" in granted and all(g.startswith("user/") for g in granted)


def test_patient_app_gets_the_patient_context(client: TestClient, store: Store) -> None:
    app, _ = register(
        store, name="Sổ sức khoẻ", role_code="patient", redirect_uris=[APP_URI], public=True
    )
    assert app.scopes.startswith("patient/")
    acc = person(store, role="patient", patient="bn-42")
    csrf = sign_in(client, store, acc)
    code = get_code(client, app, csrf, scope="patient/*.rs launch/patient")
    body = redeem(client, app, code).json()
    assert body["patient"] == "bn-42" and body["fhirUser"] == f"{AUD}/Patient/bn-42"
    actor = actor_of(store, body["access_token"])
    assert actor.patient == "Patient/bn-42" and actor.role.code == "patient"


# ---- bearer tokens on the FHIR API ------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer a b", "Bearer x.y.z"])
def test_bearer_refusals(store: Store, header: str | None) -> None:
    with store.read() as conn, pytest.raises(FhirError) as caught:
        bearer_actor(conn, header, address=None, audience=AUD)
    assert caught.value.status == 401
    assert caught.value.issues[0].code == "login" and " / " in caught.value.issues[0].text


def test_bearer_expired_or_for_another_server(
    client: TestClient, store: Store, clock: Clock
) -> None:
    token, _ = machine_token(client, store)
    with store.read() as conn, pytest.raises(FhirError):
        bearer_actor(conn, f"Bearer {token}", address=None, audience="http://other/fhir")
    clock.advance(900 + 31)
    with pytest.raises(FhirError) as caught:
        actor_of(store, token)
    assert "expired" in caught.value.issues[0].text


def test_role_change_and_disabling_take_effect_at_once(
    client: TestClient, store: Store, doctor_app: clients.Client
) -> None:
    acc = person(store)
    csrf = sign_in(client, store, acc)
    code = get_code(client, doctor_app, csrf, scope="user/Condition.cruds user/Patient.rs")
    token = redeem(client, doctor_app, code).json()["access_token"]
    assert actor_of(store, token).scopes.allows("Condition", "c")
    with store.begin() as conn:
        accounts.update_account(conn, acc.id, role_code="nurse")
    nurse = actor_of(store, token)
    assert nurse.role.code == "nurse" and not nurse.scopes.allows("Condition", "c")
    assert nurse.scopes.allows("Condition", "r")
    with store.begin() as conn:
        accounts.update_account(conn, acc.id, active=False)
    with pytest.raises(FhirError):
        actor_of(store, token)


def test_disabling_the_app_stops_its_users_tokens(
    client: TestClient, store: Store, doctor_app: clients.Client
) -> None:
    csrf = sign_in(client, store, person(store))
    token = redeem(client, doctor_app, get_code(client, doctor_app, csrf)).json()["access_token"]
    assert actor_of(store, token).kind == "user"
    with store.begin() as conn:
        clients.disable_client(conn, doctor_app.client_id)
    with pytest.raises(FhirError):
        actor_of(store, token)


def test_401_carries_the_bearer_challenge() -> None:
    app = FastAPI()
    errors.install(app)

    @app.get("/fhir/Patient")
    def refuse() -> None:
        raise FhirError(401, Issue("login", "Cần đăng nhập / authentication required"))

    with TestClient(app) as http:
        bare = http.get("/fhir/Patient")
        sent = http.get("/fhir/Patient", headers={"Authorization": "Bearer x"})
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == 'Bearer realm="benhan"'
    assert sent.headers["www-authenticate"] == 'Bearer realm="benhan", error="invalid_token"'


# ---- discovery ------------------------------------------------------------------------------


def test_smart_configuration(client: TestClient) -> None:
    root = client.get("/.well-known/smart-configuration")
    under_fhir = client.get("/fhir/.well-known/smart-configuration")
    assert root.status_code == under_fhir.status_code == 200
    conf = root.json()
    assert under_fhir.json() == conf
    assert conf["issuer"] == "http://testserver"
    assert conf["token_endpoint"] == "http://testserver/oauth/token"
    assert conf["authorization_endpoint"] == "http://testserver/oauth/authorize"
    assert conf["jwks_uri"] == "http://testserver/oauth/jwks"
    assert conf["code_challenge_methods_supported"] == ["S256"]
    assert conf["response_types_supported"] == ["code"]
    assert set(conf["grant_types_supported"]) == {"authorization_code", "client_credentials"}
    assert {"client_secret_basic", "client_secret_post"} <= set(
        conf["token_endpoint_auth_methods_supported"]
    )
    assert {"launch-standalone", "client-confidential-symmetric", "permission-v2"} <= set(
        conf["capabilities"]
    )
    assert "system/*.rs" in conf["scopes_supported"]


def test_jwks(client: TestClient, store: Store) -> None:
    first = client.get("/oauth/jwks")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/jwk-set+json")
    (jwk,) = first.json()["keys"]  # made on first request, so a client can cache it early
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in jwk
    token, _ = machine_token(client, store)
    assert parts(token)[0]["kid"] == jwk["kid"]
    assert client.get("/oauth/jwks").json() == first.json()


# ---- the command line -----------------------------------------------------------------------


def test_cli_clients_and_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("BENHAN_DATABASE_URL", url)
    runner = CliRunner()
    added = runner.invoke(
        clients_app, ["add", "--name", "HIS", "--role", "system-integrator", "--facility", FACILITY]
    )
    assert added.exit_code == 0, added.output
    lines = dict(line.split(": ", 1) for line in added.stdout.splitlines() if ": " in line)
    client_id, secret = lines["client_id"], lines["client_secret"]
    from benhan.store.database import open_store

    store = open_store(url)
    try:
        with store.begin() as conn:
            assert clients.authenticate_client(conn, client_id, secret).name == "HIS"
        listed = runner.invoke(clients_app, ["list"])
        assert listed.exit_code == 0 and client_id in listed.stdout
        assert secret not in listed.stdout
        bad = runner.invoke(clients_app, ["add", "--name", "X", "--role", "doctor"])
        assert bad.exit_code == 2
        assert runner.invoke(clients_app, ["disable", client_id]).exit_code == 0
        assert runner.invoke(clients_app, ["disable", "nope"]).exit_code == 2
        with store.begin() as conn, pytest.raises(AuthError):
            clients.authenticate_client(conn, client_id, secret)

        assert runner.invoke(keys_app, ["rotate", "--overlap", "0"]).exit_code == 0
        assert runner.invoke(keys_app, ["rotate", "--overlap", "-5"]).exit_code == 2
        keys_list = runner.invoke(keys_app, ["list"])
        assert keys_list.exit_code == 0
        with store.read() as conn:
            from benhan.auth.keys import list_keys

            kids = [k.kid for k in list_keys(conn)]
        assert len(kids) == 2 and all(k[:8] in keys_list.stdout for k in kids)
    finally:
        store.dispose()
