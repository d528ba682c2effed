"""Signing with a key held by a remote-signing service that speaks the Cloud Signature Consortium
API v2 (CSC, https://cloudsignatureconsortium.org/resources/download-api-specifications/), as
the Vietnamese licensed CAs' remote signing and the EU's QTSPs expose it.

A certificate whose key is there is stored with a key URI `https://host/path?credential=<id>`
(optionally `&secrets=<NAME>`); benhan holds only the certificate chain. Construction reads the
credential (`credentials/info`: the key enabled, an algorithm for the certificate's key, the
same certificate); each signature is authorised for its one hash (`credentials/authorize` → SAD,
so services at SCAL2 sign too) and made by `signatures/signHash`. Every signature returned is
verified against the certificate's public key before benhan uses it.

The service's bearer token and the credential's PIN or OTP come from the environment only —
BENHAN_CSC_TOKEN, BENHAN_CSC_PIN, BENHAN_CSC_OTP, or with `secrets=BS_AN` BENHAN_CSC_TOKEN_BS_AN
and so on, for credentials reached with different tokens — never from the URI or the database,
and they are struck out of any text of the service's that reaches a message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from benhan.signing.pki import PkiError, certificate_algorithm, serial_hex
from benhan.signing.signers import Algorithm

TOKEN_ENV, PIN_ENV, OTP_ENV = "BENHAN_CSC_TOKEN", "BENHAN_CSC_PIN", "BENHAN_CSC_OTP"
TIMEOUT_ENV = "BENHAN_CSC_TIMEOUT"
DEFAULT_TIMEOUT = 15.0  # seconds; a document is signed inside its write transaction
SHA256 = "2.16.840.1.101.3.4.2.1"
# signAlgo for each JOSE algorithm, best first: the signature algorithm, then the bare key
# algorithm with hashAlgorithmOID (CSC v2 signatures/signHash takes either, as key/algo lists it).
SIGN_ALGOS: dict[Algorithm, tuple[str, ...]] = {
    "ES256": ("1.2.840.10045.4.3.2", "1.2.840.10045.2.1"),  # ecdsa-with-SHA256, id-ecPublicKey
    "RS256": ("1.2.840.113549.1.1.11", "1.2.840.113549.1.1.1"),  # sha256WithRSA, rsaEncryption
}
_SECRET_IDS = {"PIN": PIN_ENV, "OTP": OTP_ENV}  # CSC v2 auth/objects ids benhan can answer
_PARAMETERS = {"credential", "secrets"}
_PROFILE_RE = re.compile(r"[A-Z0-9_]{1,32}")


class RemoteSigningError(PkiError):
    """The remote-signing service could not be reached, refused, or answered wrongly."""


def new_client(timeout: float) -> httpx.Client:
    """The HTTP client for one exchange with the service (tests put their own service here)."""
    return httpx.Client(timeout=timeout)


# ---- the key URI


@dataclass(frozen=True)
class CscAddress:
    base: str  # https://host[:port][/path]; the API is at {base}/csc/v2/
    credential: str
    secrets: str = ""  # the suffix of the environment variables holding this credential's secrets

    @property
    def host(self) -> str:
        return urlsplit(self.base).netloc

    def variable(self, name: str) -> str:
        return f"{name}_{self.secrets}" if self.secrets else name


def parse_uri(uri: str) -> CscAddress:
    """`https://host/path?credential=<id>[&secrets=<NAME>]`, refused with every problem named;
    a URI that carries a password, PIN or token is refused too (they belong in BENHAN_CSC_*)."""
    parts = urlsplit(uri)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = dict(pairs)
    problems = []
    if parts.scheme != "https" or not parts.hostname:
        problems.append("phải là https://máy-chủ/… / must be https://host/…")
    if parts.username or parts.password or parts.fragment:
        problems.append("không được chứa mật khẩu hay # / must carry no password and no #")
    unknown = sorted({k for k, _ in pairs} - _PARAMETERS)
    if unknown or len(pairs) != len(query):
        problems.append(
            f"tham số lạ hoặc lặp {unknown}: mã truy cập và PIN đặt trong {TOKEN_ENV}, {PIN_ENV} "
            f"/ unknown or repeated parameters {unknown}: tokens and PINs go in {TOKEN_ENV}, "
            f"{PIN_ENV}"
        )
    if not query.get("credential", "").strip():
        problems.append("thiếu credential=<mã chứng danh> / credential=<id> is missing")
    if "secrets" in query and not _PROFILE_RE.fullmatch(query["secrets"]):
        problems.append("secrets= chỉ gồm A-Z, 0-9, _ / secrets= must be A-Z, 0-9, _")
    if problems:
        shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"  # no secrets
        raise RemoteSigningError(
            f"địa chỉ khóa ký từ xa {shown!r} không hợp lệ / bad remote-signing key URI: "
            + "; ".join(problems)
        )
    base = f"https://{parts.netloc}{parts.path.rstrip('/')}"
    return CscAddress(base, query["credential"].strip(), query.get("secrets", ""))


# ---- the secrets and the timeout, from the environment


@dataclass(frozen=True)
class _Secrets:
    token: str = field(repr=False)
    answers: dict[str, str] = field(repr=False)  # auth object id (PIN, OTP) → its value

    @classmethod
    def from_env(cls, address: CscAddress) -> _Secrets:
        token_env = address.variable(TOKEN_ENV)
        token = os.environ.get(token_env, "")
        if not token:
            raise RemoteSigningError(
                f"chưa đặt {token_env} (mã truy cập dịch vụ ký từ xa) / {token_env} (the "
                "service's access token) is not set"
            )
        answers = {
            oid: value
            for oid, env in _SECRET_IDS.items()
            if (value := os.environ.get(address.variable(env), ""))
        }
        return cls(token, answers)

    def redact(self, text: str) -> str:
        """The service's own words, short, with every secret of ours struck out."""
        for secret in (self.token, *self.answers.values()):
            text = text.replace(secret, "***")
        return re.sub(r"[\x00-\x1f]+", " ", text)[:300]


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 600:
        raise RemoteSigningError(
            f"{TIMEOUT_ENV}={raw!r}: phải là số giây, lớn hơn 0 và tối đa 600 / must be a number "
            "of seconds, above 0 and at most 600"
        )
    return value


# ---- the signer


class RemoteSigner:
    """A Signer whose private key stays with a CSC v2 remote-signing service.

    Construction asks the service about the credential, so a wrong token, an unknown or
    disabled credential, a key of another algorithm or another certificate fails here."""

    def __init__(self, address: CscAddress, chain: Sequence[x509.Certificate]) -> None:
        if not chain:
            raise RemoteSigningError("thiếu chứng thư / the key's certificate chain is empty")
        self._address, self._chain = address, list(chain)
        self._algorithm = certificate_algorithm(self._chain[0])
        self._secrets = _Secrets.from_env(address)
        self._timeout = _timeout()
        with new_client(self._timeout) as client:
            info = self._call(
                client, "credentials/info", certificates="single", certInfo=True, authInfo=True
            )
        self._sign_algo = self._check_credential(info)
        self._auth_data = self._auth_data_for(info.get("auth"))

    @property
    def algorithm(self) -> Algorithm:
        return self._algorithm

    @property
    def _credential_en(self) -> str:
        return f"the remote-signing credential {self._address.credential!r}"

    @property
    def chain(self) -> list[x509.Certificate]:
        return list(self._chain)

    def sign(self, data: bytes) -> bytes:
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
        hashed = {"hashes": [digest], "hashAlgorithmOID": SHA256}
        with new_client(self._timeout) as client:
            sad = self._call(
                client, "credentials/authorize", numSignatures=1, **hashed, **self._auth_data
            ).get("SAD")
            if not isinstance(sad, str) or not sad:
                raise self._malformed("credentials/authorize", "SAD")
            signed = self._call(
                client, "signatures/signHash", SAD=sad, signAlgo=self._sign_algo, **hashed
            )
        return self._checked(data, self._one_signature(signed))

    # ---- what the service says about the credential

    def _check_credential(self, info: dict[str, Any]) -> str:
        """The signAlgo to use; refuses a disabled key or certificate, a key of another
        algorithm, or a credential holding another certificate than the one stored."""
        key, cert = info.get("key"), info.get("cert") or {}
        if not isinstance(key, dict) or not isinstance(key.get("algo"), list):
            raise self._malformed("credentials/info", "key/algo")
        vi, en = f"khóa ký từ xa {self._address.credential!r}", self._credential_en
        if key.get("status") != "enabled":
            host = self._address.host
            raise RemoteSigningError(
                f"{vi} đã bị vô hiệu hóa ở {host} / {en} is disabled at {host}"
            )
        status = cert.get("status", "valid") if isinstance(cert, dict) else "valid"
        if status != "valid":
            raise RemoteSigningError(
                f"{vi}: dịch vụ báo chứng thư ở trạng thái {status!r} / {en}: the service says "
                f"its certificate is {status!r}"
            )
        self._check_certificate(cert)
        offered = ", ".join(str(oid) for oid in key["algo"]) or "—"
        usable = [oid for oid in SIGN_ALGOS[self._algorithm] if oid in key["algo"]]
        if not usable:
            raise RemoteSigningError(
                f"{vi}: dịch vụ không ký {self._algorithm} được cho chứng thư này (chỉ có "
                f"{offered}) / {en}: the service cannot sign {self._algorithm} for this "
                f"certificate (it offers {offered})"
            )
        return usable[0]

    def _check_certificate(self, cert: object) -> None:
        certificates = cert.get("certificates") if isinstance(cert, dict) else None
        if not certificates:  # not every service returns it; the signatures are checked anyway
            return
        try:
            theirs = base64.b64decode(str(certificates[0]), validate=True)
        except (binascii.Error, ValueError):
            raise self._malformed("credentials/info", "cert/certificates") from None
        ours = self._chain[0]
        if theirs != ours.public_bytes(serialization.Encoding.DER):
            serial = serial_hex(ours.serial_number)
            raise RemoteSigningError(
                f"khóa ký từ xa {self._address.credential!r} gắn với chứng thư khác chứng thư "
                f"{serial} đã nhập / {self._credential_en} holds another certificate than the "
                f"imported {serial}"
            )

    def _auth_data_for(self, auth: object) -> dict[str, Any]:
        """`authData` for credentials/authorize: nothing when the service authorises by itself
        (implicit), the PIN and OTP asked for when explicit; oauth2code needs a person at a
        browser, which a server signing documents and checkpoints cannot offer."""
        mode = auth.get("mode", "explicit") if isinstance(auth, dict) else "explicit"
        if mode == "implicit":
            return {}
        if mode != "explicit":
            raise RemoteSigningError(
                f"khóa ký từ xa {self._address.credential!r} đòi xác thực kiểu {mode!r}, benhan "
                f"không làm được / {self._credential_en} asks for {mode!r} authorisation, which "
                "benhan cannot give: use one with explicit (PIN/OTP) or implicit authorisation"
            )
        objects = auth.get("objects") if isinstance(auth, dict) else None
        wanted = [str(o.get("id")) for o in objects or [] if isinstance(o, dict)] or ["PIN"]
        foreign = [w for w in wanted if w not in _SECRET_IDS]
        if foreign:
            raise RemoteSigningError(
                f"dịch vụ đòi {foreign}, benhan chỉ gửi được PIN, OTP / the service asks for "
                f"{foreign}; benhan can send only PIN and OTP"
            )
        answers = self._secrets.answers
        given = [{"id": w, "value": answers[w]} for w in wanted if w in answers]
        if not given:
            names = " / ".join(self._address.variable(_SECRET_IDS[w]) for w in wanted)
            raise RemoteSigningError(
                f"chưa đặt {names} cho khóa ký từ xa / {names} is not set for the "
                "remote-signing credential"
            )
        return {"authData": given}

    # ---- the signatures it returns

    def _one_signature(self, signed: dict[str, Any]) -> bytes:
        found = signed.get("signatures")
        if not isinstance(found, list) or len(found) != 1 or not isinstance(found[0], str):
            raise self._malformed("signatures/signHash", "signatures")
        try:
            return base64.b64decode(found[0], validate=True)
        except (binascii.Error, ValueError):
            raise self._malformed("signatures/signHash", "signatures") from None

    def _checked(self, data: bytes, signature: bytes) -> bytes:
        """The JOSE form of the signature (RFC 7518 §3), once the certificate's key verifies it;
        ECDSA comes as the DER Ecdsa-Sig-Value CSC services return (or already r‖s)."""
        public = self._chain[0].public_key()
        try:
            if isinstance(public, ec.EllipticCurvePublicKey):
                r, s = _ecdsa_pair(signature)
                public.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
                return r.to_bytes(32, "big") + s.to_bytes(32, "big")
            assert isinstance(public, rsa.RSAPublicKey)  # certificate_algorithm allowed no other
            public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            return signature
        except (InvalidSignature, ValueError):
            serial = serial_hex(self._chain[0].serial_number)
            raise RemoteSigningError(
                f"chữ ký dịch vụ ký từ xa trả về không khớp khóa công khai của chứng thư {serial}: "
                f"đã từ chối / the signature the remote-signing service returned does not verify "
                f"against certificate {serial}'s public key: refused"
            ) from None

    # ---- HTTP

    def _call(self, client: httpx.Client, method: str, **fields: Any) -> dict[str, Any]:
        """POST {base}/csc/v2/{method} for the credential with the bearer token; the JSON
        answer, or an error saying what went wrong in words a person can act on."""
        host, url = self._address.host, f"{self._address.base}/csc/v2/{method}"
        body = {"credentialID": self._address.credential, **fields}
        headers = {"Authorization": f"Bearer {self._secrets.token}"}
        try:
            response = client.post(url, json=body, headers=headers)
        except httpx.TimeoutException:
            raise RemoteSigningError(
                f"dịch vụ ký từ xa {host} không trả lời trong {self._timeout:g} giây ({method}) / "
                f"the remote-signing service {host} did not answer within {self._timeout:g} s "
                f"({method})"
            ) from None
        except httpx.HTTPError as exc:
            raise RemoteSigningError(
                f"không kết nối được dịch vụ ký từ xa {host} / cannot reach the remote-signing "
                f"service {host}: {type(exc).__name__}"
            ) from None
        if response.status_code == 401:
            token_env = self._address.variable(TOKEN_ENV)
            raise RemoteSigningError(
                f"dịch vụ ký từ xa {host} từ chối mã truy cập trong {token_env} (HTTP 401) / the "
                f"remote-signing service {host} refused the access token in {token_env} (HTTP 401)"
            )
        answer = _json(response)
        if response.status_code != 200:
            raise RemoteSigningError(
                f"dịch vụ ký từ xa {host} từ chối {method} / the remote-signing service {host} "
                f"refused {method}: HTTP {response.status_code} {self._said(answer)}"
            )
        if answer is None:
            raise self._malformed(method, "JSON")
        return answer

    def _said(self, answer: dict[str, Any] | None) -> str:
        """The CSC error object (`error`, `error_description`), as the service put it."""
        if answer is None:
            return ""
        words = ": ".join(str(answer[k]) for k in ("error", "error_description") if answer.get(k))
        return self._secrets.redact(words)

    def _malformed(self, method: str, what: str) -> RemoteSigningError:
        return RemoteSigningError(
            f"dịch vụ ký từ xa {self._address.host} trả lời {method} thiếu hoặc hỏng {what} / "
            f"the remote-signing service answered {method} with a missing or malformed {what}"
        )


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _ecdsa_pair(signature: bytes) -> tuple[int, int]:
    """(r, s) from a DER Ecdsa-Sig-Value, or from 64 bytes of r‖s (some services send those)."""
    try:
        return decode_dss_signature(signature)
    except ValueError:
        if len(signature) != 64:
            raise
        return int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")


def signer_from_uri(uri: str, chain: Sequence[x509.Certificate]) -> RemoteSigner:
    """The signer for a stored key URI, e.g. https://rs.ca.example.vn/csc?credential=7f3a."""
    return RemoteSigner(parse_uri(uri), chain)


__all__ = ["CscAddress", "RemoteSigner", "RemoteSigningError", "parse_uri", "signer_from_uri"]
