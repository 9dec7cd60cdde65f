#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/ from the hostile-input cases.

Each seed is named after its case (B01, B16, ...). Tokens are signed with the fuzz fixture key
(fuzz/fixtures/fuzz-signing-key.pem), so the valid ones stay valid for the targets, which
trust that key. Run it again after changing the key or a case; it needs the `cryptography`
package (scripts/install-envoy.sh installs it into .venv with the test packages).

Usage: python3 fuzz/make_seeds.py
"""

import base64
import hashlib
import hmac
import json
import pathlib
import shutil

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
CORPUS = FUZZ / "corpus"

NOW = 1_750_000_000
ISSUER = "https://auth.test"
AUDIENCE = "orders-api"

KEY = serialization.load_pem_private_key(
    (FUZZ / "fixtures" / "fuzz-signing-key.pem").read_bytes(), password=None
)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


NUMBERS = KEY.public_key().public_numbers()
N, E = b64u(uint(NUMBERS.n)), b64u(uint(NUMBERS.e))
# RFC 7638 thumbprint, as gatehouse computes the kid.
KID = b64u(hashlib.sha256(f'{{"e":"{E}","kty":"RSA","n":"{N}"}}'.encode()).digest())

H0 = {"alg": "RS256", "typ": "at+jwt", "kid": KID}
P0 = {
    "iss": ISSUER,
    "aud": AUDIENCE,
    "sub": "svc-reports",
    "client_id": "svc-reports",
    "jti": "j-0001",
    "iat": NOW - 5,
    "nbf": NOW - 5,
    "exp": NOW + 600,
    "scope": "documents assets",
    "pver": 1,
    "grants": ["doc-42.read", "assets.read", "reports.read"],
}


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def rs256(header, payload) -> str:
    signing_input = f"{b64u(compact(header))}.{b64u(compact(payload))}"
    signature = KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64u(signature)}"


def with_claims(**changes):
    payload = dict(P0)
    for name, value in changes.items():
        if value is ABSENT:
            payload.pop(name, None)
        else:
            payload[name] = value
    return payload


ABSENT = object()
T0 = rs256(H0, P0)


def write(target: str, name: str, content) -> None:
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    (directory / name).write_bytes(data)


def authorization_header() -> None:
    seeds = {
        "b20-basic-and-bearer": f"Basic dXNlcjpwdw==,Bearer {T0}",
        "b20-two-bearers-joined": f"Bearer {T0},Bearer {T0}",
        "b20-two-lines": f"Bearer {T0}\nBearer {T0}",
        "b21-lower-case": f"bearer {T0}",
        "b21-three-spaces": f"Bearer   {T0}",
        "b21-tab": f"Bearer\t{T0}",
        "b21-bare-scheme": "Bearer",
        "b21-bearer-bearer": f"Bearer Bearer {T0}",
        "b21-other-scheme": f"Token {T0}",
        "b21-extra": f"Bearer {T0} extra",
        "b21-nbsp": f"Bearer {T0}\u00a0",
    }
    for name, value in seeds.items():
        write("authorization_header", name, value)


def jwt_verify() -> None:
    header, payload, signature = T0.split(".")
    seeds = {"t0-valid": T0}
    for alg in ["none", "None", "nOnE"]:
        none_header = dict(H0, alg=alg, typ="JWT")
        seeds[f"b01-alg-{alg}"] = f"{b64u(compact(none_header))}.{payload}."
    seeds["b01-no-signature"] = f"{header}.{payload}"
    seeds["b01-padding"] = T0 + "=="
    seeds["b01-trailing-char"] = T0 + "A"
    seeds["b01-std-alphabet"] = T0.replace("-", "+").replace("_", "/")
    seeds["b01-space-in-signature"] = f"{header}.{payload}.{signature[:40]} {signature[40:]}"
    seeds["b01-four-segments"] = T0 + ".x"
    seeds["b01-jwe-shaped"] = f"{header}.{payload}.{signature[:20]}.{signature[20:60]}.abc"
    # B02: HS256 keyed with the PEM of the public key.
    public_pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_input = f"{b64u(compact(dict(H0, alg='HS256')))}.{payload}"
    hs_mac = hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest()
    seeds["b02-hs256-public-pem"] = f"{hs_input}.{b64u(hs_mac)}"
    seeds["b06-exp-i64-max"] = rs256(H0, with_claims(exp=9223372036854775807))
    seeds["b06-exp-string"] = rs256(H0, with_claims(exp=str(NOW + 600)))
    seeds["b07-aud-nested"] = rs256(H0, with_claims(aud=[[AUDIENCE]]))
    seeds["b08-iss-prefix"] = rs256(H0, with_claims(iss="https://auth.tes"))
    seeds["b10-id-token-typ"] = rs256(dict(H0, typ="JWT"), P0)
    seeds["b24-crlf-sub"] = rs256(H0, with_claims(sub="acct-1001\r\nx-admin: true"))
    # B21: just over the 16 KiB cap.
    seeds["b21-oversized"] = f"{header}.{'A' * 16400}.{signature}"
    for name, value in seeds.items():
        write("jwt_verify", name, value)


def jwt_claims() -> None:
    """Optional `@<seconds>` clock line, header line, payload; the target fills in `$KID`."""
    header = compact(dict(H0, kid="$KID")).decode()

    def seed(payload, head=header, now=None):
        text = json.dumps(payload, separators=(",", ":"))
        prefix = f"@{now}\n" if now is not None else ""
        return f"{prefix}{head}\n{text}"

    seeds = {
        "p0-valid": seed(P0),
        "b05-nbf-plus-3600": seed(with_claims(nbf=NOW + 3600, exp=NOW + 7200)),
        "b05-nbf-plus-59": seed(with_claims(nbf=NOW + 59)),
        "b05-nbf-plus-61": seed(with_claims(nbf=NOW + 61)),
        "b05-iat-future": seed(with_claims(nbf=ABSENT, iat=NOW + 3600)),
        "b06-exp-u64-max": seed(with_claims(exp=18446744073709551615)),
        "b06-exp-i64-min": seed(with_claims(exp=-9223372036854775808)),
        "b06-exp-1e308": seed(with_claims(exp=1e308)),
        "b06-exp-fraction": seed(with_claims(exp=NOW + 600.5)),
        "b06-exp-array": seed(with_claims(exp=[NOW + 600])),
        "b06-exp-absent": seed(with_claims(exp=ABSENT)),
        "b07-aud-array": seed(with_claims(aud=["billing", AUDIENCE])),
        "b07-aud-object": seed(with_claims(aud={"0": AUDIENCE})),
        "b08-iss-case": seed(with_claims(iss="https://AUTH.test")),
        "b08-iss-array": seed(with_claims(iss=[ISSUER])),
        "b24-sub-nul": seed(with_claims(sub="acct-1001\u0000admin")),
        "b24-sub-number": seed(with_claims(sub=12345)),
        "b02-hs256-header": seed(P0, head=compact(dict(H0, alg="HS256", kid="$KID")).decode()),
        "crit-header": seed(P0, head=header[:-1] + ',"crit":["exp"]}'),
        "duplicate-member": seed(P0).replace('"sub":', '"sub":"x","sub":', 1),
        "partner-stale": seed(
            with_claims(iss="https://partner.test", pver=ABSENT, grants=ABSENT), now=400
        ),
        "partner-fresh": seed(
            with_claims(iss="https://partner.test", pver=ABSENT, grants=ABSENT), now=100
        ),
    }
    for name, value in seeds.items():
        write("jwt_claims", name, value)


def jwks_fetched() -> None:
    jwk = {"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256", "n": N, "e": E}
    short = dict(jwk, kid="short", n=b64u(b"\xff" * 128))
    odd = [
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
        dict(jwk, use="enc"),
        dict(jwk, alg="RS512"),
        short,
        dict(jwk, kid=""),
        "not an object",
        {k: v for k, v in jwk.items() if k != "alg"},
    ]
    seeds = {
        "one-key": {"keys": [jwk]},
        "odd-members": {"keys": odd + [jwk]},
        "only-odd-members": {"keys": odd},
        "repeated-kid": {"keys": [jwk, dict(jwk, e="Aw")]},
        "empty": {"keys": []},
        "not-a-set": [jwk],
    }
    for name, value in seeds.items():
        write("jwks_fetched", name, compact(value))


def path_and_tuple() -> None:
    """Lines: method, target, host, type, name, template."""
    paths = {
        "valid": "/v1/documents/doc-42?x=1",
        "b16-dot-dot": "/v1/documents/doc-42/../doc-99",
        "b16-encoded-dot-dot": "/v1/documents/doc-42/%2e%2e/doc-99",
        "b16-encoded-slash": "/v1/documents/doc-42%2F..%2Fdoc-99",
        "b16-double-slash": "//v1/documents/doc-42",
        "b16-authority": "//evil/v1/documents/doc-42",
        "b16-dot": "/v1/documents/./doc-42",
        "b16-backslash": "/v1/documents/doc-42\\..\\doc-99",
        "b16-encoded-backslash": "/v1/documents/doc-42%5C..%5Cdoc-99",
        "b16-nul": "/v1/documents/doc-42%00",
        "b16-double-encoding": "/v1/documents/doc-42%2500",
        "b16-parameter": "/v1/documents/..;/admin/users",
        "b16-fragment": "/v1/documents/doc-42#x",
        "b18-trailing-slash": "/v1/documents/doc-42/",
        "b18-case": "/V1/Documents/DOC-42",
        "b19-escaped": "/v1/documents/50%25",
    }
    for name, target in paths.items():
        write("path_and_tuple", name, f"GET\n{target}\nlocalhost\n\n\n/v1/documents/{{id}}")
    write("path_and_tuple", "route-host", "HEAD\n/v1/documents/doc-42\nDOCS.test:8443\n\n\n/v1/{**}")
    write("path_and_tuple", "rest-template", "GET\n/static/a/b.js\n\nassets\nasset\n/static/{**}")
    write("path_and_tuple", "root", "GET\n/\n\nhome\n\n/")
    write("path_and_tuple", "delete", "DELETE\n/v1/documents/doc-99\n\ndocuments\ndocument\n/v1/{*}/doc-99")


def check_request() -> None:
    """Lines: method, target, host, type, name, store answer, authorization values."""

    def seed(method, target, *values, host="localhost", kind="", name="", answer="granted"):
        return "\n".join([method, target, host, kind, name, answer, *values])

    seeds = {
        "permit": seed("GET", "/v1/documents/doc-42", "Bearer $TOKEN"),
        "permit-head-typed": seed("HEAD", "/v1/documents/doc-42?a=b", "bearer  $TOKEN",
                                  kind="documents", name="document"),
        "permit-static": seed("GET", "/static/app.js", "Bearer $TOKEN", kind="assets"),
        "route-table": seed("GET", "/v1/documents/doc-42", "Bearer $TOKEN", host="docs.test:8443"),
        "db-granted": seed("GET", "/v1/documents/doc-7", "Bearer $DB_TOKEN"),
        "db-refused": seed("GET", "/v1/documents/doc-7", "Bearer $DB_TOKEN", answer="refused"),
        "db-down": seed("GET", "/v1/documents/doc-7", "Bearer $DB_TOKEN", answer="down"),
        "b16-dot-dot": seed("GET", "/v1/documents/doc-42/../doc-99", "Bearer $TOKEN"),
        "b16-encoded-slash": seed("GET", "/v1/documents%2Fdoc-42", "Bearer $TOKEN"),
        "b16-parameter": seed("GET", "/v1/documents/doc-42;x=1", "Bearer $TOKEN"),
        "b18-lower-method": seed("get", "/v1/documents/doc-42", "Bearer $TOKEN"),
        "b18-not-granted": seed("DELETE", "/v1/documents/doc-99", "Bearer $TOKEN"),
        "b18-options-no-token": seed("OPTIONS", "/v1/documents/doc-42"),
        "b19-scope": seed("GET", "/v1/reports/r-1", "Bearer $TOKEN"),
        "b20-two-values": seed("GET", "/v1/documents/doc-42", "Bearer $TOKEN", "Bearer $DB_TOKEN"),
        "b20-joined": seed("GET", "/v1/documents/doc-42", "Basic dXNlcjpwdw==,Bearer $TOKEN"),
        "b21-extra": seed("GET", "/v1/documents/doc-42", "Bearer $TOKEN extra"),
        "b22-query-token": seed("GET", "/v1/documents/doc-42?access_token=$TOKEN"),
        "revoked": seed("GET", "/v1/documents/doc-42", "Bearer $REVOKED_TOKEN"),
    }
    for name, value in seeds.items():
        write("check_request", name, value)


def token_form() -> None:
    """First line: authorization value; rest: the form body."""

    def basic(client_id, secret, scheme="Basic "):
        return scheme + base64.b64encode(f"{client_id}:{secret}".encode()).decode()

    reports = basic("svc-reports", "S3cret-CANARY-2")
    seeds = {
        "b25-body-credentials": "\ngrant_type=client_credentials&client_id=svc-reports"
        "&client_secret=S3cret-CANARY-2",
        "b25-basic-and-body-secret": f"{reports}\ngrant_type=client_credentials"
        "&client_secret=S3cret-CANARY-2",
        "b25-control": f"{reports}\ngrant_type=client_credentials",
        "b25-escaped-id": basic("svc%3Aa", "p%40ss+word", scheme="basic   ")
        + "\ngrant_type=password&username=alice&password=P%40ss-CANARY-1",
        "b29-repeated": f"{reports}\ngrant_type=password&username=alice&password=a&password=b",
        "b29-empty-value": f"{reports}\ngrant_type=password&username=alice&password=",
        "broken-base64": "Basic !!!\ngrant_type=%zz&&=x&scope",
        "no-colon": "Basic " + base64.b64encode(b"nocolon").decode() + "\n",
        # An `&` inside the secret is data (it once ended the secret early).
        "basic-ampersand-in-secret": basic("svc-reports", "S3cret-CANARY-2&x") + "\n",
    }
    for name, value in seeds.items():
        write("token_form", name, value)


def policy_file() -> None:
    shutil.copy(REPO / "tests" / "it" / "fixtures" / "oauth.yaml", CORPUS / "policy_file" / "oauth")
    write("policy_file", "invoices-excerpt", INVOICES_EXCERPT)
    write("policy_file", "aliases", ALIASES)
    write("policy_file", "unknown-field", "resources: [{ id: a, colour: red }]\n")


# The invoices half of examples/policy.yaml (the ledger resources left out).
INVOICES_EXCERPT = """\
policy_id: invoices-rbac-v1
resources:
  - { id: invoices.list, type: invoices, name: invoice, action: read, url: "/v1/invoices" }
  - { id: invoices.read, type: invoices, name: invoice, action: read, url: "/v1/invoices/{id}" }
  - { id: invoices.create, type: invoices, name: invoice, action: write, url: "/v1/invoices" }
  - { id: invoices.attachments.read, type: invoices, name: attachment, action: read,
      url: "/v1/invoices/{id}/attachments/{**}" }
roles:
  - id: invoice-reader
    description: Reads invoices
    resources: [invoices.list, invoices.read, invoices.attachments.read]
clients:
  - name: invoice-service
    kind: confidential
    grant_types: [client_credentials]
    scopes: [invoices]
  - name: invoices-web
    kind: public
    grant_types: [authorization_code, password]
    scopes: [invoices]
    redirect_uris: ["http://127.0.0.1:8400/callback"]
accounts:
  - username: alice
    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$wFy1jiNeQDnp6/LXCtc+SQ$fGrAhDD+M6kHMV+/lRXiF/q3uo5Duy8q8wBMh3ifDzI"
grants:
  - { role: invoice-reader, client: invoice-service }
  - { role: invoice-reader, account: alice }
routes:
  - { host: invoices.local, path: "/v1/invoices/{**}", type: invoices }
"""

# Anchors and aliases, which YAML readers have to bound.
ALIASES = """\
resources:
  - &r { id: a, type: t, name: n, action: read, url: "/a/{x}" }
roles:
  - { id: r, resources: &ids [a, a, a] }
  - { id: s, resources: *ids }
clients: []
accounts: &none []
grants: *none
"""


def main() -> None:
    for target in [
        "authorization_header",
        "jwt_verify",
        "jwt_claims",
        "jwks_fetched",
        "path_and_tuple",
        "check_request",
        "token_form",
        "policy_file",
    ]:
        # Seeds are overwritten; other inputs kept in the corpus (crash regressions) stay.
        (CORPUS / target).mkdir(parents=True, exist_ok=True)
    authorization_header()
    jwt_verify()
    jwt_claims()
    jwks_fetched()
    path_and_tuple()
    check_request()
    token_form()
    policy_file()


if __name__ == "__main__":
    main()
