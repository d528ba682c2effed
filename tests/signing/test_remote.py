"""Signing with a key held by a CSC API v2 remote-signing service (signing/remote.py), against a
small CSC service of our own that holds real keys: a Starlette app reached through httpx."""

from __future__ import annotations

import base64
import copy
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from typer.testing import CliRunner

from benhan.fhir.primitives import now as clock
from benhan.signing import pki, remote
from benhan.signing.pki_commands import pki_app
from benhan.signing.remote import RemoteSigner, RemoteSigningError, parse_uri
from benhan.signing.signers import Algorithm
from benhan.store.database import Store
from benhan.store.schema import resource
from tests.emr.world import person, place, visit
from tests.signing.certs import Chain, Key, issue
from tests.signing.test_documents import document, practitioner
from tests.signing.test_pki import pem, verify_jose
from tests.signing.test_service import check, sign, stored

TOKEN, PIN = "tok-7f3a9c", "246810"
BASE = "https://csc.test/rs"
SHA256 = "2.16.840.1.101.3.4.2.1"
EC_KEY, ECDSA_SHA256 = "1.2.840.10045.2.1", "1.2.840.10045.4.3.2"
RSA_KEY, RSA_SHA256 = "1.2.840.113549.1.1.1", "1.2.840.113549.1.1.11"


@pytest.fixture(autouse=True)
def var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CA's keys under this test's own passphrase file; no BENHAN_CSC_* from outside."""
    monkeypatch.setenv("BENHAN_VAR", str(tmp_path / "var"))
    monkeypatch.delenv(pki.PASSPHRASE_ENV, raising=False)
    for name in (remote.TOKEN_ENV, remote.PIN_ENV, remote.OTP_ENV, remote.TIMEOUT_ENV):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- a CSC v2 service


class Refusal(Exception):
    """A CSC error: HTTP 400 with `error` and `error_description`."""


@dataclass
class Credential:
    key: Key
    certificate: x509.Certificate  # what the service says the credential holds
    algo: list[str]
    key_status: str = "enabled"
    cert_status: str = "valid"
    mode: str = "explicit"
    pin: str = PIN
    raw_ecdsa: bool = False  # answer r‖s instead of DER
    forge: bool = False  # sign with another key than the certificate's
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # method → canned answer


class CscService:
    """The parts of CSC API v2 benhan uses: credentials/info, credentials/authorize (SAD bound
    to the hashes, single use), signatures/signHash; bearer token; real keys."""

    def __init__(self) -> None:
        self.credentials: dict[str, Credential] = {}
        self.sads: dict[str, tuple[str, list[str]]] = {}
        self.seen: list[tuple[str, dict[str, Any]]] = []  # (method, body) of accepted requests
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "credentials/info": self.info,
            "credentials/authorize": self.authorize,
            "signatures/signHash": self.sign_hash,
        }
        self.app = Starlette(routes=[
            Route(f"/rs/csc/v2/{method}", self._endpoint(method, h), methods=["POST"])
            for method, h in handlers.items()
        ])  # fmt: skip

    def _endpoint(self, method: str, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return JSONResponse({"error": "invalid_token"}, status_code=401)
            body = await request.json()
            self.seen.append((method, body))
            try:
                canned = self._credential(body).answers.get(method)
                return JSONResponse(canned if canned is not None else handler(body))
            except Refusal as refusal:
                error = {"error": "invalid_request", "error_description": str(refusal)}
                return JSONResponse(error, status_code=400)

        return endpoint

    def _credential(self, body: dict[str, Any]) -> Credential:
        found = self.credentials.get(body.get("credentialID", ""))
        if found is None:
            raise Refusal("Invalid parameter credentialID")
        return found

    def info(self, body: dict[str, Any]) -> dict[str, Any]:
        c = self._credential(body)
        der = c.certificate.public_bytes(serialization.Encoding.DER)
        auth: dict[str, Any] = {"mode": c.mode}
        if c.mode == "explicit":
            auth["objects"] = [{"type": "Password", "id": "PIN", "format": "N", "label": "PIN"}]
        return {
            "key": {"status": c.key_status, "algo": c.algo, "len": c.key.key_size},
            "cert": {"status": c.cert_status, "certificates": [base64.b64encode(der).decode()]},
            "auth": auth,
            "multisign": 1,
        }

    def authorize(self, body: dict[str, Any]) -> dict[str, Any]:
        c = self._credential(body)
        if body.get("numSignatures") != 1 or body.get("hashAlgorithmOID") != SHA256:
            raise Refusal("Invalid parameter numSignatures or hashAlgorithmOID")
        if c.mode == "explicit":
            given = {d["id"]: d["value"] for d in body.get("authData", [])}.get("PIN")
            if given != c.pin:
                raise Refusal(f"PIN {given} is wrong")  # echoes it: benhan must strike it out
        sad = secrets.token_urlsafe(16)
        self.sads[sad] = (body["credentialID"], list(body["hashes"]))
        return {"SAD": sad, "expiresIn": 300}

    def sign_hash(self, body: dict[str, Any]) -> dict[str, Any]:
        c = self._credential(body)
        if self.sads.pop(body.get("SAD", ""), None) != (body["credentialID"], body["hashes"]):
            raise Refusal("Invalid parameter SAD")
        if body.get("signAlgo") not in c.algo or body.get("hashAlgorithmOID") != SHA256:
            raise Refusal("Invalid parameter signAlgo")
        key = _new_key(c.key) if c.forge else c.key
        digests = [base64.b64decode(h) for h in body["hashes"]]
        return {"signatures": [base64.b64encode(_sign(key, d, c.raw_ecdsa)).decode()
                               for d in digests]}  # fmt: skip


def _sign(key: Key, digest: bytes, raw: bool) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    der = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    if not raw:
        return der
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _new_key(like: Key) -> Key:
    if isinstance(like, rsa.RSAPrivateKey):
        return rsa.generate_private_key(65537, 2048)
    return ec.generate_private_key(ec.SECP256R1())


def forwarding(app: Starlette) -> httpx.MockTransport:
    """httpx requests answered by the Starlette app, as if it were at https://csc.test."""
    client = TestClient(app, base_url="https://csc.test")

    def handle(request: httpx.Request) -> httpx.Response:
        answer = client.request(request.method, str(request.url), headers=request.headers,
                                content=request.content)  # fmt: skip
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return httpx.MockTransport(handle)


def reach(monkeypatch: pytest.MonkeyPatch, transport: httpx.BaseTransport) -> None:
    def client(timeout: float) -> httpx.Client:
        return httpx.Client(transport=transport, timeout=timeout)

    monkeypatch.setattr(remote, "new_client", client)


@pytest.fixture
def csc(monkeypatch: pytest.MonkeyPatch) -> CscService:
    """The service, reached by every remote signer of the test, with benhan's secrets set."""
    service = CscService()
    reach(monkeypatch, forwarding(service.app))
    monkeypatch.setenv(remote.TOKEN_ENV, TOKEN)
    monkeypatch.setenv(remote.PIN_ENV, PIN)
    return service


# ---------------------------------------------------------------- certificates of a licensed CA


def licensed_chain(algorithm: Algorithm) -> Chain:
    """A licensed CA's chain valid now, its leaf's key to be held by the service."""
    start = clock() - timedelta(days=1)
    root = issue("Licensed test root", None, ca=True, days=3650, start=start - timedelta(days=9))
    mid = issue("Licensed test CA", root, ca=True, days=1825, start=start - timedelta(days=5))
    key = rsa.generate_private_key(65537, 2048) if algorithm == "RS256" else None
    return Chain(root, mid, issue("BS. Trần An", mid, ca=False, start=start, key=key))


@pytest.fixture(scope="module")
def chains() -> dict[Algorithm, Chain]:
    return {"ES256": licensed_chain("ES256"), "RS256": licensed_chain("RS256")}


def certs(chain: Chain) -> list[x509.Certificate]:
    return [chain.leaf.cert, chain.intermediate.cert, chain.root.cert]


def hold(csc: CscService, chain: Chain, credential: str = "cred-1", **options: Any) -> str:
    """The service holds the chain's leaf key as `credential`; its key URI."""
    algo = [EC_KEY] if isinstance(chain.leaf.key, ec.EllipticCurvePrivateKey) else [RSA_KEY]
    values: dict[str, Any] = {"certificate": chain.leaf.cert, "algo": algo, **options}
    csc.credentials[credential] = Credential(chain.leaf.key, **values)
    return f"{BASE}?credential={credential}"


def signer(uri: str, chain: Chain) -> RemoteSigner:
    return RemoteSigner(parse_uri(uri), certs(chain))


def refused(uri: str, chain: Chain, data: bytes | None = None) -> str:
    """The message of the refusal, at construction or (with `data`) at signing."""
    with pytest.raises(RemoteSigningError) as caught:
        made = signer(uri, chain)
        if data is not None:
            made.sign(data)
    message = caught.value.message
    assert TOKEN not in message and PIN not in message
    return message


# ---------------------------------------------------------------- signing


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_signatures_come_back_in_jose_form_and_verify_with_the_certificate(
    algorithm: Algorithm, csc: CscService, chains: dict[Algorithm, Chain]
) -> None:
    chain = chains[algorithm]
    made = signer(hold(csc, chain), chain)
    assert made.algorithm == algorithm and made.chain == certs(chain)
    data = b'{"resourceType":"Bundle","type":"document"}'
    signature = made.sign(data)
    verify_jose(chain.leaf.cert, data, signature)
    assert len(signature) == (64 if algorithm == "ES256" else 256)
    methods = [m for m, _ in csc.seen]
    assert methods == ["credentials/info", "credentials/authorize", "signatures/signHash"]
    (_, authorized), (_, signed) = csc.seen[1:]
    assert authorized["authData"] == [{"id": "PIN", "value": PIN}]
    assert authorized["hashes"] == signed["hashes"] and len(signed["hashes"]) == 1
    assert signed["signAlgo"] == (EC_KEY if algorithm == "ES256" else RSA_KEY)
    assert csc.sads == {}  # each SAD was used once


def test_the_signature_algorithm_is_preferred_and_raw_ecdsa_is_accepted(
    csc: CscService, chains: dict[Algorithm, Chain]
) -> None:
    chain = chains["ES256"]
    made = signer(hold(csc, chain, algo=[EC_KEY, ECDSA_SHA256], raw_ecdsa=True), chain)
    verify_jose(chain.leaf.cert, b"abc", made.sign(b"abc"))
    assert csc.seen[-1][1]["signAlgo"] == ECDSA_SHA256


def test_an_implicit_credential_is_authorised_without_a_pin(
    csc: CscService, chains: dict[Algorithm, Chain], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(remote.PIN_ENV)
    chain = chains["RS256"]
    made = signer(hold(csc, chain, mode="implicit"), chain)
    verify_jose(chain.leaf.cert, b"abc", made.sign(b"abc"))
    assert "authData" not in csc.seen[1][1]


def test_secrets_of_a_named_profile_come_from_their_own_variables(
    csc: CscService, chains: dict[Algorithm, Chain], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(remote.TOKEN_ENV, "someone-elses-token")
    monkeypatch.delenv(remote.PIN_ENV)
    monkeypatch.setenv("BENHAN_CSC_TOKEN_BS_AN", TOKEN)
    monkeypatch.setenv("BENHAN_CSC_PIN_BS_AN", PIN)
    chain = chains["ES256"]
    uri = hold(csc, chain) + "&secrets=BS_AN"
    verify_jose(chain.leaf.cert, b"abc", signer(uri, chain).sign(b"abc"))


# ---------------------------------------------------------------- the whole path


def remote_doctor(store: Store, chain: Chain, uri: str) -> tuple[str, str]:
    """A documented visit, and a doctor whose licensed certificate's key is at the service."""
    enc = visit(store, place(store), person(store), status="in-progress")
    document(store, enc)
    author = practitioner(store)
    with store.begin() as conn:
        pki.ensure_ca(conn)  # the province's CA, whose CRLs `check` reads
        record = pki.import_certificate(
            conn, pem(*certs(chain)), owner=author, facility="27001", key=uri, trust_root=True
        )
    assert record.key_held == "https" and record.encrypted_key is None
    return enc, author


def bundles(store: Store) -> int:
    with store.read() as conn:
        query = sa.select(sa.func.count()).where(resource.c.rtype == "Bundle")
        return int(conn.scalar(query) or 0)


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_a_document_signed_by_the_remote_service_verifies(
    algorithm: Algorithm, store: Store, csc: CscService, chains: dict[Algorithm, Chain]
) -> None:
    chain = chains[algorithm]
    enc, author = remote_doctor(store, chain, hold(csc, chain))
    saved = sign(store, author, kind="visit-summary", encounter=enc)
    bundle = stored(store, author, "Bundle", saved.id)
    assert bundle["signature"]["who"]["reference"] == author
    result = check(store, bundle)
    assert result.ok, result.report()
    assert result.signer == chain.leaf.cert
    changed = copy.deepcopy(bundle)
    changed["entry"][0]["resource"]["title"] += "."
    assert [c.name for c in check(store, changed).failures] == ["content"]


def test_a_forged_signature_is_refused_and_nothing_is_stored(
    store: Store, csc: CscService, chains: dict[Algorithm, Chain]
) -> None:
    chain = chains["ES256"]
    enc, author = remote_doctor(store, chain, hold(csc, chain, forge=True))
    before = bundles(store)
    with pytest.raises(pki.PkiError) as caught:
        sign(store, author, kind="visit-summary", encounter=enc)
    assert "does not verify against certificate" in caught.value.message
    assert bundles(store) == before


# ---------------------------------------------------------------- failures, each with its message


def test_a_service_that_is_down_is_named(
    chains: dict[Algorithm, Chain], monkeypatch: pytest.MonkeyPatch
) -> None:
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv(remote.TOKEN_ENV, TOKEN)
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    message = refused(f"https://127.0.0.1:{port}/rs?credential=c", chains["ES256"])
    assert f"cannot reach the remote-signing service 127.0.0.1:{port}: ConnectError" in message


def test_a_service_that_does_not_answer_in_time_is_named(
    chains: dict[Algorithm, Chain], monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    reach(monkeypatch, httpx.MockTransport(slow))
    monkeypatch.setenv(remote.TOKEN_ENV, TOKEN)
    monkeypatch.setenv(remote.TIMEOUT_ENV, "2.5")
    message = refused(f"{BASE}?credential=c", chains["ES256"])
    assert "csc.test did not answer within 2.5 s (credentials/info)" in message


def test_a_refused_or_missing_token(
    csc: CscService, chains: dict[Algorithm, Chain], monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = chains["ES256"]
    uri = hold(csc, chain)
    monkeypatch.setenv(remote.TOKEN_ENV, "expired-token")
    assert "refused the access token in BENHAN_CSC_TOKEN (HTTP 401)" in refused(uri, chain)
    monkeypatch.delenv(remote.TOKEN_ENV)
    assert "BENHAN_CSC_TOKEN (the service's access token) is not set" in refused(uri, chain)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"key_status": "disabled"}, "remote-signing credential 'cred-1' is disabled at csc.test"),
        ({"cert_status": "revoked"}, "the service says its certificate is 'revoked'"),
        (
            {"algo": [RSA_SHA256]},
            f"cannot sign ES256 for this certificate (it offers {RSA_SHA256})",
        ),
        ({"mode": "oauth2code"}, "asks for 'oauth2code' authorisation, which benhan cannot give"),
        ({"answers": {"credentials/info": {"cert": {}}}}, "missing or malformed key/algo"),
    ],
)
def test_a_credential_benhan_cannot_use_is_refused_before_signing(
    options: dict[str, Any], says: str, csc: CscService, chains: dict[Algorithm, Chain]
) -> None:
    message = refused(hold(csc, chains["ES256"], **options), chains["ES256"])
    assert says in message
    assert [m for m, _ in csc.seen] == ["credentials/info"]  # nothing was signed


def test_a_credential_holding_another_certificate_is_refused(
    csc: CscService, chains: dict[Algorithm, Chain]
) -> None:
    ours, theirs = chains["ES256"], licensed_chain("ES256")
    uri = hold(csc, ours, certificate=theirs.leaf.cert)
    assert "holds another certificate than the imported" in refused(uri, ours)


def test_an_unknown_credential_gets_the_services_own_words(
    csc: CscService, chains: dict[Algorithm, Chain]
) -> None:
    hold(csc, chains["ES256"])
    message = refused(f"{BASE}?credential=nope", chains["ES256"])
    assert "refused credentials/info: HTTP 400 invalid_request: Invalid parameter" in message


def test_a_wrong_or_missing_pin(
    csc: CscService, chains: dict[Algorithm, Chain], monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = chains["RS256"]
    uri = hold(csc, chain, pin="999999")
    message = refused(uri, chain, b"abc")  # the service echoes the PIN: it is struck out
    assert "refused credentials/authorize: HTTP 400 invalid_request: PIN *** is wrong" in message
    monkeypatch.delenv(remote.PIN_ENV)
    assert "BENHAN_CSC_PIN is not set for the remote-signing credential" in refused(uri, chain)


@pytest.mark.parametrize(
    ("method", "answer", "says"),
    [
        ("credentials/authorize", {"expiresIn": 300}, "authorize with a missing or malformed SAD"),
        ("signatures/signHash", {"signatures": ["AA==", "AA=="]}, "malformed signatures"),
        ("signatures/signHash", {"signatures": ["not base64!"]}, "malformed signatures"),
        ("signatures/signHash", {"signatures": ["AAEC"]}, "does not verify against certificate"),
    ],
)
def test_a_malformed_answer_is_refused(
    method: str, answer: dict[str, Any], says: str, csc: CscService, chains: dict[Algorithm, Chain]
) -> None:
    chain = chains["ES256"]
    assert says in refused(hold(csc, chain, answers={method: answer}), chain, b"abc")


def test_a_bad_timeout_is_named(
    csc: CscService, chains: dict[Algorithm, Chain], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(remote.TIMEOUT_ENV, "soon")
    message = refused(hold(csc, chains["ES256"]), chains["ES256"])
    assert "BENHAN_CSC_TIMEOUT='soon'" in message


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("http://csc.test/rs?credential=c", "must be https://host/"),
        ("https://csc.test/rs", "credential=<id> is missing"),
        ("https://csc.test/rs?credential=c&pin=1234", "unknown or repeated parameters ['pin']"),
        ("https://csc.test/rs?credential=c&credential=d", "unknown or repeated parameters []"),
        ("https://user:pw@csc.test/rs?credential=c", "must carry no password"),
        ("https://csc.test/rs?credential=c&secrets=bs-an", "secrets= must be A-Z, 0-9, _"),
    ],
)
def test_bad_key_uris_are_refused(uri: str, says: str) -> None:
    with pytest.raises(RemoteSigningError) as caught:
        parse_uri(uri)
    assert says in caught.value.message
    assert "1234" not in caught.value.message and "pw" not in caught.value.message


def test_key_uris_are_read() -> None:
    found = parse_uri("https://rs.ca.example.vn:8443/csc/?credential=7f3a%2F1&secrets=BS_AN")
    assert found.base == "https://rs.ca.example.vn:8443/csc"
    assert (found.credential, found.secrets, found.host) == ("7f3a/1", "BS_AN",
                                                            "rs.ca.example.vn:8443")  # fmt: skip
    assert found.variable(remote.PIN_ENV) == "BENHAN_CSC_PIN_BS_AN"


# ---------------------------------------------------------------- `benhan pki import --key-uri`


@pytest.fixture
def cli(store: Store, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BENHAN_DATABASE_URL", store.engine.url.render_as_string(False))
    monkeypatch.setenv("BENHAN_FACILITY", "27001")
    return CliRunner()


def test_cli_imports_a_certificate_whose_key_is_remote_or_on_a_token(
    cli: CliRunner, store: Store, tmp_path: Path, chains: dict[Algorithm, Chain]
) -> None:
    def imported(algorithm: Algorithm, owner: str, key_uri: str) -> Any:
        chain_file = tmp_path / f"{algorithm}.pem"
        chain_file.write_bytes(pem(*certs(chains[algorithm])))
        return cli.invoke(pki_app, ["import", str(chain_file), "--owner", owner, "--facility",
                                    "27001", "--trust-root", "--key-uri", key_uri])  # fmt: skip

    bad = imported("ES256", "Practitioner/bs-an", f"{BASE}?credential=c&token={TOKEN}")
    assert bad.exit_code == 2 and "tokens and PINs go in" in bad.output
    assert TOKEN not in bad.output
    done = imported("ES256", "Practitioner/bs-an", f"{BASE}?credential=cred-1")
    assert done.exit_code == 0, done.output
    token = "pkcs11:token=BV;object=bs-an?module-path=/usr/lib/softhsm/libsofthsm2.so"
    assert imported("RS256", "Practitioner/bs-binh", token).exit_code == 0
    with store.read() as conn:
        [remote_held] = pki.certificates(conn, owner="Practitioner/bs-an")
        [token_held] = pki.certificates(conn, owner="Practitioner/bs-binh")
    assert remote_held.key_uri == f"{BASE}?credential=cred-1" and remote_held.key_held == "https"
    assert token_held.key_held == "pkcs11"
