//! The authorization-code grant with PKCE through `/authorize` and its sign-in form: exact
//! redirect URIs, S256 only, single-use codes, ID tokens that the check path refuses.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{
    ALICE_CANARY, BOB_CANARY, TestGatehouse, answer, assert_deny, assert_permit, forge,
    oauth_policy,
};

const SPA_REDIRECT: &str = "http://127.0.0.1/spa/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-some-more-entropy";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An HTTP client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The hidden fields of the sign-in form, HTML-unescaped.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let unescape = |value: &str| {
        value
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    };
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|rest| {
            let name = rest.split("name=\"").nth(1).unwrap().split('"').next();
            let value = rest.split("value=\"").nth(1).unwrap().split('"').next();
            (name.unwrap().to_owned(), unescape(value.unwrap()))
        })
        .collect()
}

fn query_param(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

struct Flow<'a> {
    g: &'a TestGatehouse,
    client: &'a str,
    redirect_uri: &'a str,
    scope: &'a str,
}

impl Flow<'_> {
    fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&self.g.url("/authorize")).unwrap();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.g.clients[self.client].id)
                .append_pair("redirect_uri", self.redirect_uri)
                .append_pair("scope", self.scope)
                .append_pair("state", "st-1")
                .append_pair("code_challenge", &challenge(VERIFIER))
                .append_pair("code_challenge_method", "S256");
            for (name, value) in extra {
                query.append_pair(name, value);
            }
        }
        url.into()
    }

    /// Opens the sign-in page, submits its form with these credentials; returns the response.
    async fn sign_in(&self, username: &str, password: &str) -> reqwest::Response {
        let page = browser()
            .get(self.authorize_url(&[("nonce", "n-1")]))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let mut form = hidden_fields(&html);
        form.push(("username".into(), username.into()));
        form.push(("password".into(), password.into()));
        browser()
            .post(self.g.url("/authorize"))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// A fresh code for alice.
    async fn code(&self) -> String {
        let response = self.sign_in("alice", ALICE_CANARY).await;
        assert_eq!(response.status(), 303);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(self.redirect_uri), "{location}");
        assert_eq!(query_param(&location, "state").as_deref(), Some("st-1"));
        assert_eq!(
            query_param(&location, "iss").as_deref(),
            Some("https://auth.test")
        );
        query_param(&location, "code").unwrap()
    }

    async fn redeem(&self, code: &str, verifier: &str) -> (u16, Value) {
        let client = &self.g.clients[self.client];
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri),
            ("code_verifier", verifier),
        ];
        let basic = match &client.secret {
            Some(secret) => Some((client.id.as_str(), secret.as_str())),
            None => {
                form.push(("client_id", &client.id));
                None
            }
        };
        self.g.token_request(basic, &form).await
    }
}

fn spa(g: &TestGatehouse) -> Flow<'_> {
    Flow {
        g,
        client: "spa-web",
        redirect_uri: SPA_REDIRECT,
        scope: "openid documents",
    }
}

async fn read_document(g: &TestGatehouse, token: &str) -> crate::support::Answer {
    let bearer = format!("Bearer {token}");
    answer(
        &g.check(
            "GET",
            "/v1/documents/doc-42",
            &[("authorization", &bearer)],
            &[("resource_type", "documents")],
        )
        .await,
    )
}

#[tokio::test]
async fn public_client_signs_a_person_in_with_pkce_and_gets_no_refresh_token() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let flow = spa(&g);
    let code = flow.code().await;
    let (status, body) = flow.redeem(&code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["resources"][0]["id"], "doc-42.read");
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(forge::payload(access)["sub"], "alice");
    assert_permit(&read_document(&g, access).await);

    // OpenID Connect: an ID token for the client, with the nonce, that the check path refuses.
    let id_token = body["id_token"].as_str().unwrap();
    let claims = forge::payload(id_token);
    assert_eq!(claims["aud"], g.clients["spa-web"].id);
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["sub"], "alice");
    assert!(claims.get("grants").is_none());
    let denied = read_document(&g, id_token).await;
    assert_deny(&denied, 401);
    assert!(denied.www_authenticate().contains("invalid_token"));
}

#[tokio::test]
async fn without_openid_there_is_no_id_token() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let flow = Flow {
        scope: "documents",
        ..spa(&g)
    };
    let code = flow.code().await;
    let (status, body) = flow.redeem(&code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("id_token").is_none());
}

#[tokio::test]
async fn a_code_is_single_use_and_its_replay_revokes_what_it_issued() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let flow = spa(&g);
    let code = flow.code().await;
    let (status, first) = flow.redeem(&code, VERIFIER).await;
    assert_eq!(status, 200);
    let access = first["access_token"].as_str().unwrap();
    assert_permit(&read_document(&g, access).await);

    let (status, replay) = flow.redeem(&code, VERIFIER).await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    g.running.gatehouse.reload().await.unwrap();
    assert_deny(&read_document(&g, access).await, 401);
}

#[tokio::test]
async fn wrong_verifier_other_client_and_late_redemption_are_invalid_grant() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let flow = spa(&g);

    let code = flow.code().await;
    let other_verifier = "x".repeat(43);
    let (status, body) = flow.redeem(&code, &other_verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // A code issued to spa-web cannot be redeemed by svc-reports, even with the verifier.
    let code = flow.code().await;
    let reports = Flow {
        client: "svc-reports",
        ..spa(&g)
    };
    let (status, body) = reports.redeem(&code, VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let code = flow.code().await;
    g.clock.advance(61);
    let (status, body) = flow.redeem(&code, VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let (status, body) = flow.redeem("not-a-code", VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let code = flow.code().await;
    let (status, body) = flow.redeem(&code, "short").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn redirect_uris_match_exactly_or_the_request_is_refused_without_a_redirect() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    for redirect_uri in [
        "http://127.0.0.1/spa/callback/",
        "http://127.0.0.1/spa/callback?x=1",
        "http://127.0.0.1/spa/callbackx",
        "http://127.0.0.1:8080/spa/callback",
        "http://127.0.0.1/SPA/callback",
        "https://evil.example/spa/callback",
        "http://127.0.0.1/spa/callback#frag",
    ] {
        let flow = Flow {
            redirect_uri,
            ..spa(&g)
        };
        let response = browser().get(flow.authorize_url(&[])).send().await.unwrap();
        assert_eq!(response.status(), 400, "{redirect_uri}");
        assert!(response.headers().get("location").is_none());
    }

    // Unknown client: an error page, never a redirect.
    let url = spa(&g)
        .authorize_url(&[])
        .replace(&g.clients["spa-web"].id, "gh-unknown");
    let response = browser().get(url).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());

    // A client without the grant (svc-audit) cannot start a sign-in.
    let audit = Flow {
        client: "svc-audit",
        ..spa(&g)
    };
    let response = browser()
        .get(audit.authorize_url(&[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn pkce_is_required_with_s256_and_errors_go_back_to_the_client() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let flow = spa(&g);
    let redirected = |url: String| async move {
        let response = browser().get(url).send().await.unwrap();
        assert_eq!(response.status(), 303);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(SPA_REDIRECT));
        assert_eq!(query_param(&location, "state").as_deref(), Some("st-1"));
        query_param(&location, "error").unwrap()
    };

    let plain = flow
        .authorize_url(&[])
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    assert_eq!(redirected(plain).await, "invalid_request");
    let missing = flow.authorize_url(&[]).replace("code_challenge=", "x=");
    assert_eq!(redirected(missing).await, "invalid_request");
    let implicit = flow
        .authorize_url(&[])
        .replace("response_type=code", "response_type=token");
    assert_eq!(redirected(implicit).await, "unsupported_response_type");
    let scope = flow
        .authorize_url(&[])
        .replace("scope=openid+documents", "scope=ledger");
    assert_eq!(redirected(scope).await, "invalid_scope");
    let repeated = format!("{}&state=again", flow.authorize_url(&[]));
    let response = browser().get(repeated).send().await.unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn sign_in_failures_look_the_same_for_unknown_wrong_and_disabled() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let flow = spa(&g);
    let mut pages = Vec::new();
    for (username, password) in [("alice", "wrong"), ("nobody", "wrong"), ("bob", BOB_CANARY)] {
        let response = flow.sign_in(username, password).await;
        assert_eq!(response.status(), 400);
        assert!(response.headers().get("location").is_none());
        let html = response.text().await.unwrap();
        assert!(html.contains("role=\"alert\""));
        assert!(!html.contains(password) || password == "wrong");
        pages.push(html);
    }
    assert_eq!(pages[0], pages[1]);
    assert_eq!(pages[1], pages[2]);
}

#[tokio::test]
async fn the_sign_in_page_escapes_what_it_echoes_and_cannot_be_framed() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let flow = spa(&g);
    let url = flow.authorize_url(&[]).replace(
        "state=st-1",
        "state=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    );
    let response = browser().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let html = response.text().await.unwrap();
    assert!(!html.contains("<script>"));
    assert!(html.contains("&quot;&gt;&lt;script&gt;"));
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("<label for=\"password\">"));
    assert!(html.contains("autocomplete=\"current-password\""));
}

/// RFC 9700 §4.8 (PKCE downgrade) and §4.5 (code injection): a code is redeemed only with a
/// `code_verifier` and the `redirect_uri` it was issued for; a code presented with the wrong
/// binding is spent, so an injected code cannot be retried.
#[tokio::test]
async fn a_code_needs_its_verifier_and_its_redirect_uri_and_a_wrong_binding_spends_it() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let flow = spa(&g);
    let spa_id = g.clients["spa-web"].id.clone();
    let code = flow.code().await;
    let (g, code, spa_id) = (&g, code.as_str(), spa_id.as_str());
    let exchange = |redirect_uri: &'static str, verifier: Option<&'static str>| async move {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", spa_id),
        ];
        if let Some(verifier) = verifier {
            form.push(("code_verifier", verifier));
        }
        g.token_request(None, &form).await
    };

    // Without a verifier: refused before the code is looked at, so it is not spent.
    let (status, body) = exchange(SPA_REDIRECT, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // Another redirect URI than the one the code went to.
    let (status, body) = exchange("http://127.0.0.1/other/callback", Some(VERIFIER)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The right binding afterwards: the code was spent by the wrong one.
    let (status, body) = exchange(SPA_REDIRECT, Some(VERIFIER)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

/// RFC 9700 §4.2.4 and §4.12: the sign-in page and the redirect that carries the code send no
/// referrer, and the redirect is 303 (never 307, which would repost the password).
#[tokio::test]
async fn sign_in_page_and_code_redirect_send_no_referrer_and_redirect_with_303() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let flow = spa(&g);
    let page = browser().get(flow.authorize_url(&[])).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    // Nothing is loaded from elsewhere and no script runs, so nothing can leak the page's URL.
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");

    let response = flow.sign_in("alice", ALICE_CANARY).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(SPA_REDIRECT), "{location}");
    assert!(!location.contains(ALICE_CANARY), "{location}");
}
