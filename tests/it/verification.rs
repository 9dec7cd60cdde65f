//! Strict token verification on the `Check` path: compact serialisation (B01) and the JOSE
//! header (`typ`, `crit`, key sources, `kid`) here; `algorithms` (B02), `claims` (B05–B08, B24,
//! `grants`) and `scheme` (B21) in the submodules.
//!
//! Every hostile token starts from a real access token minted at `/token` for alice, whose
//! claims are changed with `forge::with` and re-signed with gatehouse's own key, so that the
//! one thing under test is the change itself.

mod algorithms;
mod claims;
mod scheme;

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use gatehouse::keys::SigningKey;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::support::{
    ALICE_PASSWORD, Answer, TestGatehouse, answer, assert_deny, assert_permit, check_request,
    example_policy, forge,
};

/// The route alice's grants cover: `GET /v1/invoices/{id}` on `resource_type=invoices`.
const TARGET: &str = "/v1/invoices/inv-1001";
const INVOICES: [(&str, &str); 1] = [("resource_type", "invoices")];

/// A gatehouse with the example policy, alice's real token and the means to forge variants.
pub(super) struct Forger {
    pub g: TestGatehouse,
    pub key: std::sync::Arc<SigningKey>,
    /// Alice's unmodified access token.
    pub token: String,
    /// Its decoded payload.
    pub claims: Value,
    /// gatehouse's (frozen) clock.
    pub now: i64,
    client: AuthorizationClient<Channel>,
}

impl Forger {
    pub async fn start() -> Self {
        let g = TestGatehouse::start(&example_policy()).await;
        let body = g.user_token("invoices-web", "alice", ALICE_PASSWORD).await;
        let token = body["access_token"].as_str().unwrap().to_owned();
        let claims = forge::payload(&token);
        let key = g.signing_key();
        let now = gatehouse::clock::Clock::now(&*g.clock);
        let client = g.check_client().await;
        Self {
            g,
            key,
            token,
            claims,
            now,
            client,
        }
    }

    /// The header gatehouse puts on access tokens.
    pub fn header(&self) -> Value {
        forge::access_header(&self.key)
    }

    /// `claims` under the access-token header, RS256-signed with gatehouse's key.
    pub fn sign(&self, claims: &Value) -> String {
        forge::rs256(&self.key, &self.header(), claims)
    }

    /// Alice's claims under `header`, RS256-signed with gatehouse's key.
    pub fn sign_header(&self, header: &Value) -> String {
        forge::rs256(&self.key, header, &self.claims)
    }

    /// Alice's claims with one claim replaced (or removed), re-signed.
    pub fn with_claim(&self, field: &str, value: Option<Value>) -> String {
        self.sign(&forge::with(&self.claims, field, value))
    }

    /// `method TARGET` with this `authorization` value.
    pub async fn request(&self, method: &str, authorization: &str) -> Answer {
        let request = check_request(
            method,
            TARGET,
            &[("authorization", authorization)],
            &INVOICES,
        );
        let response = self
            .client
            .clone()
            .check(request)
            .await
            .expect("a decision is never a gRPC error")
            .into_inner();
        answer(&response)
    }

    /// `GET TARGET` with this `authorization` value.
    pub async fn authorize(&self, authorization: &str) -> Answer {
        self.request("GET", authorization).await
    }

    /// `DELETE TARGET` with `Bearer <token>`.
    pub async fn delete(&self, token: &str) -> Answer {
        self.request("DELETE", &format!("Bearer {token}")).await
    }

    /// `GET TARGET` with `Bearer <token>`.
    pub async fn bearer(&self, token: &str) -> Answer {
        self.authorize(&format!("Bearer {token}")).await
    }
}

/// A permit for alice.
pub(super) fn assert_permits_alice(a: &Answer, case: &str) {
    assert_eq!((a.code, a.http_status), (0, 200), "{case}: {a:?}");
    assert_permit(a);
    assert_eq!(
        a.headers.get("x-gatehouse-subject").map(String::as_str),
        Some("alice"),
        "{case}: {a:?}"
    );
}

/// A 401 `invalid_token` deny: a token was presented and refused.
pub(super) fn assert_invalid_token(a: &Answer, case: &str) {
    assert_eq!((a.code, a.http_status), (16, 401), "{case}: {a:?}");
    assert_deny(a, 401);
    assert!(
        a.www_authenticate().contains("error=\"invalid_token\""),
        "{case}: {a:?}"
    );
    assert_eq!(a.body["authenticated"], false, "{case}: {a:?}");
}

#[tokio::test]
async fn unmodified_token_and_faithful_resignature_are_permitted() {
    let f = Forger::start().await;
    assert_permits_alice(&f.bearer(&f.token).await, "unmodified token");
    // The forging itself is faithful: re-signing the same claims yields a permitted token,
    // so every refusal below is caused by the one change each test makes.
    assert_permits_alice(&f.bearer(&f.sign(&f.claims)).await, "re-signed token");
}

#[tokio::test]
async fn alg_none_is_refused_in_any_casing() {
    let f = Forger::start().await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = forge::with(&f.header(), "alg", Some(json!(alg)));
        let token = forge::unsigned(&header, &f.claims);
        assert!(token.ends_with('.'));
        assert_invalid_token(&f.bearer(&token).await, alg);
    }
}

#[tokio::test]
async fn non_canonical_compact_serialisations_are_refused() {
    let f = Forger::start().await;
    let (input, signature) = f.token.rsplit_once('.').unwrap();
    let middle = signature.len() / 2;

    // A signature in the standard (+/) alphabet: pick a token whose signature has `-` or `_`.
    let standard_alphabet = (0..64)
        .map(|n| f.with_claim("jti", Some(json!(format!("jti-alphabet-{n}")))))
        .find(|t| t.rsplit_once('.').unwrap().1.contains(['-', '_']))
        .unwrap();
    let (std_input, std_signature) = standard_alphabet.rsplit_once('.').unwrap();
    let std_signature = std_signature.replace('-', "+").replace('_', "/");

    let cases = [
        ("signature deleted", input.to_owned()),
        ("padding appended", format!("{}==", f.token)),
        ("character appended", format!("{}A", f.token)),
        ("+/ alphabet", format!("{std_input}.{std_signature}")),
        (
            "space inside signature",
            format!("{input}.{} {}", &signature[..middle], &signature[middle..]),
        ),
        (
            "tab inside signature",
            format!("{input}.{}\t{}", &signature[..middle], &signature[middle..]),
        ),
        ("four segments", format!("{}.x", f.token)),
        (
            "five segments (JWE shape)",
            format!(
                "{}.{}.{}.{}.{}",
                forge::b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#),
                forge::b64("key"),
                forge::b64("iv"),
                forge::b64("ciphertext"),
                forge::b64("tag")
            ),
        ),
    ];
    for (case, token) in cases {
        assert_ne!(token, f.token, "{case}");
        assert_invalid_token(&f.bearer(&token).await, case);
    }
    // The untouched token is still good after all of that.
    assert_permits_alice(&f.bearer(&f.token).await, "control");
}

/// `input` (any `header.payload` text) with a valid RS256 signature over exactly that text.
fn sign_text(key: &SigningKey, input: &str) -> String {
    format!(
        "{input}.{}",
        forge::b64(key.sign(input.as_bytes()).unwrap())
    )
}

/// `segment` with its unused trailing bits set: decodes to the same bytes, but is not canonical.
fn with_trailing_bits(segment: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert_ne!(segment.len() % 4, 0, "no trailing bits to set");
    let (head, last) = segment.split_at(segment.len() - 1);
    let index = ALPHABET
        .iter()
        .position(|c| *c == last.as_bytes()[0])
        .unwrap();
    format!("{head}{}", ALPHABET[index | 1] as char)
}

#[tokio::test]
async fn validly_signed_but_non_canonical_segments_are_refused() {
    let f = Forger::start().await;
    // Claims whose payload segment has unused trailing bits (its length is not a multiple of 4)
    // and uses the characters that differ between the base64url and base64 alphabets.
    let claims = (0..1024)
        .map(|n| forge::with(&f.claims, "jti", Some(json!(format!("jti-{n}???")))))
        .find(|c| {
            let segment = forge::b64(c.to_string());
            segment.len() % 4 != 0 && segment.contains(['-', '_'])
        })
        .unwrap();
    let header = forge::b64(f.header().to_string());
    let payload = forge::b64(claims.to_string());
    assert_permits_alice(
        &f.bearer(&sign_text(&f.key, &format!("{header}.{payload}")))
            .await,
        "control",
    );

    let padding = "=".repeat(4 - payload.len() % 4);
    let cases = [
        (
            "payload trailing bits",
            format!("{header}.{}", with_trailing_bits(&payload)),
        ),
        ("payload padded", format!("{header}.{payload}{padding}")),
        (
            "payload in +/ alphabet",
            format!("{header}.{}", payload.replace('-', "+").replace('_', "/")),
        ),
        (
            "whitespace in payload",
            format!("{header}.{} {}", &payload[..8], &payload[8..]),
        ),
        ("empty header", format!(".{payload}")),
        ("empty payload", format!("{header}.")),
        (
            "header not JSON",
            format!("{}.{payload}", forge::b64("not json")),
        ),
        (
            "header a JSON array",
            format!("{}.{payload}", forge::b64("[1]")),
        ),
        (
            "duplicate claim",
            format!(
                "{header}.{}",
                forge::b64(format!(
                    "{{\"sub\":\"bulk-auditor\",{}",
                    &claims.to_string()[1..]
                ))
            ),
        ),
        (
            "duplicate header member",
            format!(
                "{}.{payload}",
                forge::b64(format!(
                    "{{\"alg\":\"none\",{}",
                    &f.header().to_string()[1..]
                ))
            ),
        ),
    ];
    for (case, input) in cases {
        assert_invalid_token(&f.bearer(&sign_text(&f.key, &input)).await, case);
    }
}

#[tokio::test]
async fn typ_must_be_an_access_token_type() {
    let f = Forger::start().await;
    for typ in [
        None,
        Some(json!("JWT")),
        Some(json!("id+jwt")),
        Some(json!("")),
        Some(json!(["at+jwt"])),
    ] {
        let header = forge::with(&f.header(), "typ", typ.clone());
        let a = f.bearer(&f.sign_header(&header)).await;
        assert_invalid_token(&a, &format!("typ {typ:?}"));
        assert_eq!(a.reason(), "token_type_refused", "{typ:?}");
    }
    for typ in ["at+jwt", "application/at+jwt"] {
        let header = forge::with(&f.header(), "typ", Some(json!(typ)));
        assert_permits_alice(&f.bearer(&f.sign_header(&header)).await, typ);
    }
}

#[tokio::test]
async fn crit_header_is_refused() {
    let f = Forger::start().await;
    for crit in [json!(["exp"]), json!(["b64"]), json!([])] {
        let header = forge::with(&f.header(), "crit", Some(crit.clone()));
        let a = f.bearer(&f.sign_header(&header)).await;
        assert_invalid_token(&a, &format!("crit {crit}"));
        assert_eq!(a.reason(), "token_header_refused");
    }
}

#[tokio::test]
async fn token_never_chooses_its_own_key_or_key_source() {
    let f = Forger::start().await;
    let jwk = serde_json::to_value(f.key.jwk()).unwrap();
    let cases = [
        ("jwk", jwk),
        ("jku", json!("https://attacker.example/jwks")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
    ];
    for (parameter, value) in cases {
        // Even when the embedded key is gatehouse's own, the parameter is refused.
        let header = forge::with(&f.header(), parameter, Some(value));
        let a = f.bearer(&f.sign_header(&header)).await;
        assert_invalid_token(&a, parameter);
        assert_eq!(a.reason(), "token_header_refused", "{parameter}");
    }
}

#[tokio::test]
async fn kid_is_required_and_must_name_a_trusted_key() {
    let f = Forger::start().await;
    let header = forge::with(&f.header(), "kid", None);
    let a = f.bearer(&f.sign_header(&header)).await;
    assert_invalid_token(&a, "missing kid");

    for kid in [json!(""), json!(42), json!("unknown-key-id")] {
        let header = forge::with(&f.header(), "kid", Some(kid.clone()));
        let a = f.bearer(&f.sign_header(&header)).await;
        assert_invalid_token(&a, &format!("kid {kid}"));
    }
    let header = forge::with(&f.header(), "kid", Some(json!("unknown-key-id")));
    let a = f.bearer(&f.sign_header(&header)).await;
    assert_eq!(a.reason(), "token_key_unknown");
}

#[tokio::test]
async fn token_signed_by_another_key_under_gatehouses_kid_is_refused() {
    let f = Forger::start().await;
    let attacker = SigningKey::generate().unwrap();
    assert_ne!(attacker.kid(), f.key.kid());
    // gatehouse's kid on the header, the attacker's key on the signature.
    let token = forge::rs256(&attacker, &f.header(), &f.claims);
    let a = f.bearer(&token).await;
    assert_invalid_token(&a, "foreign key");
    assert_eq!(a.reason(), "token_signature_invalid");
    // Under its own kid it is unknown.
    let own = forge::rs256(&attacker, &forge::access_header(&attacker), &f.claims);
    assert_invalid_token(&f.bearer(&own).await, "foreign kid");
}

/// B10: only access tokens pass the check path, and `/token` never takes one as a refresh
/// token. A refresh-shaped JWT (typ `rt+jwt`) signed by gatehouse's own key and an opaque
/// string are both refused as bearers; a public client may not refresh at all. Real refresh
/// tokens as bearers, and access tokens as refresh tokens, are in `refresh::b10_*`.
#[tokio::test]
async fn other_token_kinds_signed_by_the_same_key_are_not_access_tokens() {
    let f = Forger::start().await;
    let mut header = f.header();
    header["typ"] = json!("rt+jwt");
    let refresh_like = f.sign_header(&header);
    let a = f.bearer(&refresh_like).await;
    assert_deny(&a, 401);
    assert_eq!(a.reason(), "token_type_refused");
    let opaque = f
        .bearer("q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6j7K8l9Z0x1C")
        .await;
    assert_deny(&opaque, 401);

    let web = f.g.clients["invoices-web"].id.clone();
    let (status, body) =
        f.g.token_request(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &web),
                ("refresh_token", &f.token),
            ],
        )
        .await;
    // Refreshing needs an authenticated confidential client (RFC 9700 §4.14.2).
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
}

/// RFC 8725 §3.7: header and payload are UTF-8 JSON, read strictly. Invalid UTF-8, a byte-order
/// mark, UTF-16 and lone surrogate escapes are refused even in members gatehouse does not read,
/// under a valid signature.
#[tokio::test]
async fn header_and_payload_must_be_strict_utf8_json() {
    let f = Forger::start().await;
    let header = forge::with(&f.header(), "note", Some(json!("MARK")));
    let claims = forge::with(&f.claims, "note", Some(json!("MARK")));
    let (header, claims) = (header.to_string(), claims.to_string());
    let with_bytes = |json: &str, bytes: &[u8]| {
        let (before, after) = json.split_once("MARK").unwrap();
        [before.as_bytes(), bytes, after.as_bytes()].concat()
    };
    let input =
        |header: &[u8], claims: &[u8]| format!("{}.{}", forge::b64(header), forge::b64(claims));

    // The control: the extra members themselves are harmless.
    let plain = input(&with_bytes(&header, b"ok"), &with_bytes(&claims, b"ok"));
    assert_permits_alice(&f.bearer(&sign_text(&f.key, &plain)).await, "control");

    let utf16: Vec<u8> = claims.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let bom = [&[0xef, 0xbb, 0xbf][..], claims.as_bytes()].concat();
    let cases = [
        (
            "invalid UTF-8 in the payload",
            input(header.as_bytes(), &with_bytes(&claims, b"\xff")),
        ),
        (
            "invalid UTF-8 in the header",
            input(&with_bytes(&header, b"\xc3\x28"), claims.as_bytes()),
        ),
        (
            "overlong encoding",
            input(header.as_bytes(), &with_bytes(&claims, b"\xc0\xaf")),
        ),
        (
            "lone surrogate escape",
            input(header.as_bytes(), &with_bytes(&claims, b"\\ud800")),
        ),
        ("byte-order mark", input(header.as_bytes(), &bom)),
        ("UTF-16", input(header.as_bytes(), &utf16)),
    ];
    for (case, text) in cases {
        let a = f.bearer(&sign_text(&f.key, &text)).await;
        assert_invalid_token(&a, case);
        assert_eq!(a.reason(), "token_malformed", "{case}");
    }
}
