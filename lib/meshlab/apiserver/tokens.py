"""ServiceAccount tokens: TokenRequest (``serviceaccounts/<name>/token``), their verification, and TokenReview.

Tokens are JWTs signed RS256 with the lab's service-account key (one per lab process, so a token does not
outlive the lab that issued it), with the claims the real token issuer writes::

    {"aud": [...], "exp": ..., "iat": ..., "iss": "https://kubernetes.default.svc.cluster.local",
     "jti": "...", "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "sa", "uid": "..."}},
     "nbf": ..., "sub": "system:serviceaccount:ns:sa"}

Example::

    signer = Signer()
    token = signer.sign(claims(sa_object, ["https://kubernetes.default.svc.cluster.local"], 3600))
    payload = signer.verify(token)        # None: bad signature, expired, not yet valid
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from meshlab.apiserver.errors import ApiError, invalid, not_found

if TYPE_CHECKING:
    from meshlab.apiserver.authn import UserInfo
    from meshlab.apiserver.routing import Api, Target
    from meshlab.apiserver.server import Request, Response

ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = (ISSUER,)
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 48 * 3600  # --service-account-max-token-expiration is unset by default; kubeadm keeps 48h+
SA_PREFIX = "system:serviceaccount:"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Signer:
    """The lab's service-account signing key (RSA 2048, made on first use) and JWT RS256 sign/verify."""

    def __init__(self) -> None:
        self._key: rsa.RSAPrivateKey | None = None
        self._lock = threading.Lock()

    @property
    def key(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._key is None:
                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._key

    @property
    def kid(self) -> str:
        """The key id: the SHA-256 of the public key's DER form, base64url, as the real issuer derives it."""
        der = self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
        return _b64(hashlib.sha256(der).digest())

    def sign(self, payload: dict[str, Any]) -> str:
        header = {"alg": "RS256", "kid": self.kid}
        signing_input = (_b64(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()))
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64(sig)

    def verify(self, token: str, now: float | None = None) -> dict[str, Any] | None:
        """The payload of a token this signer issued that is valid at ``now``; None otherwise."""
        parts = token.split(".")
        if len(parts) != 3 or self._key is None:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            if header.get("alg") != "RS256":
                return None
            self._key.public_key().verify(_unb64(parts[2]), f"{parts[0]}.{parts[1]}".encode(),
                                          padding.PKCS1v15(), hashes.SHA256())
            payload: dict[str, Any] = json.loads(_unb64(parts[1]))
        except (ValueError, InvalidSignature, UnicodeDecodeError):
            return None
        t = time.time() if now is None else now
        if not isinstance(payload.get("exp"), int) or payload["exp"] <= t or payload.get("nbf", 0) > t + 60:
            return None
        return payload


def claims(sa: dict[str, Any], audiences: list[str], seconds: int, now: float | None = None) -> dict[str, Any]:
    """The claims of a token for ServiceAccount ``sa`` valid for ``seconds``."""
    t = int(time.time() if now is None else now)
    meta = sa["metadata"]
    return {"aud": list(audiences), "exp": t + seconds, "iat": t, "iss": ISSUER, "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": meta["namespace"],
                              "serviceaccount": {"name": meta["name"], "uid": meta.get("uid", "")}},
            "nbf": t, "sub": f"{SA_PREFIX}{meta['namespace']}:{meta['name']}"}


def sa_user(payload: dict[str, Any]) -> UserInfo:
    """The identity a verified token stands for (groups and extra as the real authenticator sets them)."""
    from meshlab.apiserver.authn import UserInfo

    k8s = payload.get("kubernetes.io") or {}
    ns = k8s.get("namespace", "")
    sa = k8s.get("serviceaccount") or {}
    return UserInfo(f"{SA_PREFIX}{ns}:{sa.get('name', '')}", sa.get("uid", ""),
                    ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"),
                    {"authentication.kubernetes.io/credential-id": [f"JTI={payload.get('jti', '')}"]})


def authenticate(api: Api, token: str, audiences: tuple[str, ...] = API_AUDIENCES) -> UserInfo | None:
    """The ServiceAccount identity of a bearer ``token``: signed by this lab, not expired, meant for one of
    ``audiences``, and its ServiceAccount still there with the same uid. None otherwise."""
    payload = api.signer.verify(token)
    if payload is None or not set(payload.get("aud") or []) & set(audiences):
        return None
    k8s = payload.get("kubernetes.io") or {}
    sa = api.store.get("serviceaccounts", k8s.get("namespace", ""), (k8s.get("serviceaccount") or {}).get("name", ""))
    if sa is None or sa["metadata"].get("uid") != (k8s.get("serviceaccount") or {}).get("uid"):
        return None
    return sa_user(payload)


def token_request(api: Api, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``POST serviceaccounts/<name>/token``: a signed token for the ServiceAccount, as a TokenRequest."""
    sa = api.store.get("serviceaccounts", namespace, name)
    if sa is None:
        raise not_found("serviceaccounts", name)
    spec = dict(body.get("spec") or {})
    seconds = spec.get("expirationSeconds") or DEFAULT_EXPIRATION
    if not isinstance(seconds, int) or seconds < MIN_EXPIRATION:
        raise invalid("TokenRequest", name, [("spec.expirationSeconds", f"Invalid value: {seconds}: may not specify "
                                              "a duration less than 10 minutes")], "authentication.k8s.io")
    if seconds > 1 << 32:
        raise invalid("TokenRequest", name, [("spec.expirationSeconds", f"Invalid value: {seconds}: may not specify "
                                              "a duration larger than 2^32 seconds")], "authentication.k8s.io")
    if spec.get("boundObjectRef"):
        raise ApiError(400, "the lab binds no tokens to objects: omit boundObjectRef (kubectl create token "
                            "--bound-object-kind)")
    audiences = list(spec.get("audiences") or API_AUDIENCES)
    now = time.time()
    payload = claims(sa, audiences, seconds, now)
    token = api.signer.sign(payload)
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": rfc3339(now)},
            "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": None},
            "status": {"token": token, "expirationTimestamp": rfc3339(payload["exp"])}}


def respond(api: Api, req: Request, t: Target) -> Response:
    """``serviceaccounts/<name>/token``: POST only (``kubectl create token``)."""
    from meshlab.apiserver.bodies import parse_body
    from meshlab.apiserver.server import Response

    if req.method != "POST":
        raise ApiError(405, "method not allowed", "MethodNotAllowed")
    body = parse_body(req) if req.body else {}
    return Response(201, token_request(api, t.namespace or "default", t.name or "", body if isinstance(body, dict)
                                       else {}))


def token_review(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    """``TokenReview``: who a token is (the lab admin's token too), for the audiences asked."""
    spec = dict(body.get("spec") or {})
    token = str(spec.get("token") or "")
    wanted = tuple(spec.get("audiences") or API_AUDIENCES)
    from meshlab.apiserver.authn import admin_user

    status: dict[str, Any] = {"user": {}, "error": "[invalid bearer token, token lookup failed]"}
    if api.is_admin_token(token):
        if set(wanted) & set(API_AUDIENCES):
            status = {"authenticated": True, "user": admin_user().as_dict(),
                      "audiences": [a for a in wanted if a in API_AUDIENCES]}
    elif (user := authenticate(api, token, wanted)) is not None:
        aud = set((api.signer.verify(token) or {}).get("aud") or [])
        status = {"authenticated": True, "user": user.as_dict(), "audiences": [a for a in wanted if a in aud]}
    return {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
