//! What the fuzz targets share: one trust set, one policy snapshot and valid tokens, all built
//! once per process from a fixed test key, and the rules a verified token must satisfy, written
//! out independently of `gatehouse::tokens` so the targets can check its answers.
//!
//! The fixtures follow the hostile-input cases: a frozen clock, issuer `https://auth.test`,
//! audience `orders-api`, 60 s leeway, and the route shape `/v1/{type}/{id}`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::catalogue::{
    Catalogue, PolicySnapshot, RevokedTokens, RouteTable, Subject, Versions,
};
use gatehouse::check::{CheckSettings, MethodMap};
use gatehouse::keys::{JwkSet, SigningKey, VerificationKeys};
use gatehouse::policy::RouteSpec;
use gatehouse::resources::Resource;
use gatehouse::tokens::{OwnClaims, TrustSet, TrustedIssuer, VerifiedToken, VerifyPolicy};
use serde_json::{Value, json};

/// The frozen clock (Unix seconds).
pub const NOW: i64 = 1_750_000_000;
/// gatehouse's own issuer: its tokens must carry `pver` and `grants`.
pub const ISSUER: &str = "https://auth.test";
/// An external issuer trusting the same key, whose keys are honoured until
/// `NOW + PARTNER_HONOURED_FOR`.
pub const PARTNER: &str = "https://partner.test";
pub const PARTNER_HONOURED_FOR: i64 = 300;
pub const AUDIENCE: &str = "orders-api";
pub const LEEWAY: i64 = 60;
pub const MAX_LIFETIME: i64 = 86_400;
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The client the valid tokens were minted for, and the account of the database-path token.
pub const CLIENT: &str = "svc-reports";
pub const ACCOUNT: &str = "alice";

/// Resource ids the valid client token lists in `grants`.
pub const GRANTED: [&str; 3] = ["doc-42.read", "assets.read", "reports.read"];
/// The `jti` the snapshot lists as revoked.
pub const REVOKED_JTI: &str = "j-revoked";
/// The resource types the valid tokens' `scope` covers (`reports` is granted but not in scope).
pub const SCOPES: [&str; 2] = ["documents", "assets"];

/// A test-only RSA-2048 key (PKCS#8), so that seeds signed with it stay valid across runs.
const KEY_PEM: &str = include_str!("../fixtures/fuzz-signing-key.pem");

/// Everything the targets decide with.
#[derive(Debug)]
pub struct Fixture {
    pub key: SigningKey,
    pub trust: TrustSet,
    pub snapshot: PolicySnapshot,
    pub settings: CheckSettings,
    /// A valid client token whose grants are listed ([`GRANTED`]).
    pub token: String,
    /// A valid account token whose grants live in the database (`"grants": "db"`).
    pub db_token: String,
    /// The client token's twin (same grants) whose `jti` ([`REVOKED_JTI`]) was revoked.
    pub revoked_token: String,
}

/// The fixture, built on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

fn build() -> Fixture {
    let key = SigningKey::from_pem(KEY_PEM).expect("the fixture key is a PKCS#8 RSA-2048 key");
    let keys = Arc::new(
        VerificationKeys::from_jwks(&JwkSet {
            keys: vec![key.jwk().clone()],
        })
        .expect("the fixture key is a usable JWK"),
    );
    let policy = |issuer: &str, own_claims| VerifyPolicy {
        issuer: issuer.to_owned(),
        audience: AUDIENCE.to_owned(),
        leeway: LEEWAY,
        max_lifetime: MAX_LIFETIME,
        max_token_bytes: MAX_TOKEN_BYTES,
        own_claims,
    };
    let trust = TrustSet::new(vec![
        TrustedIssuer {
            policy: policy(ISSUER, OwnClaims::Required),
            keys: Some(keys.clone()),
            honoured_until: None,
        },
        TrustedIssuer {
            policy: policy(PARTNER, OwnClaims::Optional),
            keys: Some(keys),
            honoured_until: Some(NOW + PARTNER_HONOURED_FOR),
        },
    ]);

    let resource = |id: &str, kind: &str, name: &str, action: &str, url: &str| Resource {
        id: id.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        action: action.to_owned(),
        url: url.to_owned(),
        description: String::new(),
    };
    let catalogue = Catalogue::new(vec![
        resource(
            "doc-42.read",
            "documents",
            "document",
            "read",
            "/v1/documents/doc-42",
        ),
        resource(
            "documents.read",
            "documents",
            "document",
            "read",
            "/v1/documents/{id}",
        ),
        resource(
            "doc-99.delete",
            "documents",
            "document",
            "delete",
            "/v1/documents/doc-99",
        ),
        resource("assets.read", "assets", "asset", "read", "/static/{**}"),
        resource(
            "reports.read",
            "reports",
            "report",
            "read",
            "/v1/reports/{id}",
        ),
        resource("home.read", "home", "home", "read", "/"),
    ])
    .expect("the fixture templates parse");
    let routes = RouteTable::new(vec![RouteSpec {
        host: Some("docs.test".to_owned()),
        path: "/v1/documents/{**}".to_owned(),
        kind: "documents".to_owned(),
        name: Some("document".to_owned()),
    }])
    .expect("the fixture route parses");
    let versions = Versions::new(HashMap::from([
        (Subject::Client(CLIENT.to_owned()), 1),
        (Subject::Account(ACCOUNT.to_owned()), 3),
    ]));
    let snapshot = PolicySnapshot {
        generation: 1,
        policy_id: "fuzz-rbac-v1".to_owned(),
        catalogue,
        versions,
        routes,
        revoked: RevokedTokens::new([REVOKED_JTI.to_owned()]),
    };
    let settings = CheckSettings {
        methods: MethodMap::default(),
        expiring_within: 120,
    };

    let header = access_header(&key);
    let token = sign_json(&key, &header, &client_claims());
    let db_token = sign_json(&key, &header, &account_claims());
    let mut revoked_claims = client_claims();
    revoked_claims["jti"] = json!(REVOKED_JTI);
    let revoked_token = sign_json(&key, &header, &revoked_claims);
    Fixture {
        key,
        trust,
        snapshot,
        settings,
        token,
        db_token,
        revoked_token,
    }
}

/// The header gatehouse puts on access tokens.
pub fn access_header(key: &SigningKey) -> Value {
    json!({"alg": "RS256", "typ": "at+jwt", "kid": key.kid()})
}

/// The claims of the valid client token.
pub fn client_claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": CLIENT, "client_id": CLIENT, "jti": "j-0001",
        "iat": NOW - 5, "nbf": NOW - 5, "exp": NOW + 600,
        "scope": SCOPES.join(" "), "pver": 1, "grants": GRANTED,
    })
}

/// The claims of the valid account token that defers to the database.
pub fn account_claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": ACCOUNT, "client_id": CLIENT, "jti": "j-0002",
        "iat": NOW - 5, "exp": NOW + 600,
        "scope": SCOPES.join(" "), "pver": 3, "cver": 1, "grants": "db",
    })
}

/// A compact RS256 token over exactly these header and payload bytes.
pub fn sign(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let signature = key.sign(token.as_bytes()).expect("RS256 signing works");
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

/// A compact RS256 token of these JSON values.
pub fn sign_json(key: &SigningKey, header: &Value, claims: &Value) -> String {
    sign(
        key,
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
}

/// Asserts that a token `verify` accepted at `now` satisfies every rule of the contract, read
/// from its decoded header and payload; `verified` must agree with the payload.
///
/// Panics (which the fuzzer reports) on the first rule broken.
pub fn assert_acceptable(header: &Value, claims: &Value, now: i64, verified: &VerifiedToken) {
    let fixture = fixture();
    assert_eq!(
        header["alg"], "RS256",
        "accepted a token whose alg is not RS256"
    );
    let typ = header["typ"].as_str().map(str::to_ascii_lowercase);
    assert!(
        matches!(typ.as_deref(), Some("at+jwt" | "application/at+jwt")),
        "accepted a token whose typ is not at+jwt: {:?}",
        header["typ"]
    );
    for refused in ["crit", "jwk", "jku", "x5u", "x5c"] {
        assert!(
            header.get(refused).is_none(),
            "accepted a header with {refused}"
        );
    }
    assert_eq!(header["kid"], fixture.key.kid(), "accepted an unknown kid");

    let iss = claims["iss"].as_str();
    let own = iss == Some(ISSUER);
    let partner = iss == Some(PARTNER) && now <= NOW + PARTNER_HONOURED_FOR;
    assert!(own || partner, "accepted iss {:?} at {now}", claims["iss"]);
    let audience_ok = match &claims["aud"] {
        Value::String(aud) => aud == AUDIENCE,
        Value::Array(values) => {
            values.iter().all(Value::is_string) && values.iter().any(|v| v == AUDIENCE)
        }
        _ => false,
    };
    assert!(audience_ok, "accepted aud {:?}", claims["aud"]);

    let (exp, iat) = match (claims["exp"].as_f64(), claims["iat"].as_f64()) {
        (Some(exp), Some(iat)) => (exp, iat),
        _ => panic!("accepted a token without numeric exp and iat"),
    };
    let now = now as f64;
    let leeway = LEEWAY as f64;
    assert!(
        now < exp + leeway,
        "accepted an expired token: exp {exp} at {now}"
    );
    assert!(
        iat <= now + leeway,
        "accepted a token issued in the future: iat {iat}"
    );
    match claims.get("nbf") {
        None => {}
        Some(nbf) => {
            let nbf = nbf.as_f64().expect("accepted a non-numeric nbf");
            assert!(
                nbf <= now + leeway,
                "accepted a token not yet valid: nbf {nbf}"
            );
        }
    }
    let lifetime = exp - iat;
    assert!(
        lifetime > 0.0 && lifetime <= MAX_LIFETIME as f64,
        "accepted a lifetime of {lifetime} s"
    );
    assert_eq!(verified.expires_at, exp);

    for (name, value) in [
        ("sub", &verified.subject),
        ("client_id", &verified.client_id),
        ("jti", &verified.jti),
    ] {
        assert_eq!(
            claims[name].as_str(),
            Some(value.as_str()),
            "{name} differs"
        );
        assert!(
            (1..=255).contains(&value.len()) && value.bytes().all(|b| (0x21..0x7f).contains(&b)),
            "accepted {name} {value:?}, which is not 1-255 bytes of visible ASCII"
        );
    }
    if own {
        assert!(
            claims["pver"].is_u64(),
            "accepted an own token without pver"
        );
        assert!(
            claims.get("grants").is_some(),
            "accepted an own token without grants"
        );
    }
}

/// Decodes one base64url segment into JSON, for checking what `verify` accepted.
pub fn decode_segment(segment: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}
