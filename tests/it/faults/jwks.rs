//! An external issuer's JWKS endpoint failing under load (B13, B30 c): answering 500,
//! hanging, or slower than the fetch timeout while gatehouse holds its keys, and failing from
//! the start, before any key was loaded.
//!
//! The gatehouse is decide-only and trusts the mock issuer of `issuers` (refresh every second,
//! refetch cooldown one second, fetch timeout 500 ms); its tokens carry no grants, so every
//! check also asks the (SQLite) store.

use std::time::{Duration, Instant};

use gatehouse::clock::Clock as _;
use gatehouse::config::Config;
use gatehouse::keys::SigningKey;
use reqwest::Method;

use super::{Load, Probe, Tolerated, sidecar};
use crate::issuers::{Behaviour, MockJwks, external_token, serve, trusting};
use crate::support::envoy::{Echo, Envoy};
use crate::support::{TestGatehouse, example_policy, forge};

const INVOICE: &str = "/v1/invoices/inv-1001";
/// How long each fault lasts.
const FAULT: Duration = Duration::from_secs(3);
const COOLDOWN_SECONDS: u64 = 1;
const FETCH_TIMEOUT_MS: u64 = 500;
const KEYS_UNAVAILABLE: Tolerated = Tolerated::Unavailable("keys_unavailable");

struct Stack {
    g: TestGatehouse,
    mock: MockJwks,
    echo: Echo,
    envoy: Envoy,
    /// The issuer's key before the fault.
    k1: SigningKey,
    /// The key the issuer publishes when its endpoint comes back.
    k2: SigningKey,
    /// A key the issuer never publishes.
    kx: SigningKey,
}

impl Stack {
    async fn start(initial: impl FnOnce(&SigningKey) -> Behaviour) -> Self {
        let [k1, k2, kx] = [(); 3].map(|_| SigningKey::generate().unwrap());
        let mock = MockJwks::start(initial(&k1)).await;
        let trusted = trusting(&mock, |t| {
            t.refresh_interval_seconds = 1;
            t.refetch_cooldown_seconds = COOLDOWN_SECONDS;
            t.fetch_timeout_ms = FETCH_TIMEOUT_MS;
        });
        let g = TestGatehouse::start_with(&example_policy(), |config: &mut Config| {
            config.issuer.enabled = false;
            config.issuers = vec![trusted];
        })
        .await;
        let echo = Echo::start().await;
        let envoy = sidecar(g.dir.path(), g.running.grpc_addr, &echo).await;
        Self {
            g,
            mock,
            echo,
            envoy,
            k1,
            k2,
            kx,
        }
    }

    fn token(&self, key: &SigningKey) -> String {
        external_token(key, self.g.clock.now())
    }

    /// Requests alice's k1 token must get, a token of a key nobody publishes, a token naming
    /// k1 but signed by another key, and none at all; each tolerating `tolerated`.
    fn probes(&self, tolerated: &[Tolerated]) -> Vec<Probe> {
        let alice = self.token(&self.k1);
        let unknown = self.token(&self.kx);
        let claims = forge::payload(&alice);
        let bad_signature = forge::rs256(&self.kx, &forge::access_header(&self.k1), &claims);
        let mut probes = vec![
            Probe::permit("alice", Method::GET, INVOICE, Some(&alice)),
            Probe::deny("alice_delete", 403, Method::DELETE, INVOICE, Some(&alice)),
            Probe::deny("unknown_kid", 401, Method::GET, INVOICE, Some(&unknown)),
            Probe::deny(
                "bad_signature",
                401,
                Method::GET,
                INVOICE,
                Some(&bad_signature),
            ),
        ];
        for probe in &mut probes {
            probe.tolerated.extend_from_slice(tolerated);
        }
        probes.push(Probe::deny("no_token", 401, Method::GET, INVOICE, None));
        probes
    }

    async fn readyz(&self) -> u16 {
        let response = self.g.http.get(self.g.url("/readyz")).send().await.unwrap();
        response.status().as_u16()
    }
}

/// With the keys cached, an endpoint behaving as `fault` changes no decision: alice's token
/// is permitted throughout, a token whose key nobody has is denied 401 (never permitted, never
/// 503), refetches stay bounded by the cooldown however many such tokens arrive, and once the
/// endpoint is back the key it newly publishes is accepted without a restart.
async fn outage_with_cached_keys(name: &'static str, fault: impl FnOnce(&SigningKey) -> Behaviour) {
    let s = Stack::start(|k1| serve(&[k1])).await;
    let started = Instant::now();
    while !s.g.running.gatehouse.keys_ready() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "keys never loaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut load = Load::start(name, s.envoy.url(""), s.probes(&[]));
    load.run_for(Duration::from_secs(1)).await;

    load.fault_begins();
    s.mock.set(fault(&s.k1));
    let hits = s.mock.hits();
    // A key the issuer has not published yet: unknown during the whole fault.
    let k2_token = s.token(&s.k2);
    load.add(
        Probe::permit("alice_new_key", Method::GET, INVOICE, Some(&k2_token))
            .tolerating(Tolerated::Deny(401, "token_key_unknown")),
    );
    load.run_for(FAULT).await;
    let fetches = s.mock.hits() - hits;

    s.mock.set(serve(&[&s.k1, &s.k2]));
    load.fault_ends();
    load.until_recovered().await;
    load.run_for(Duration::from_secs(1)).await;
    let report = load.finish(&s.echo).await;
    report.print(&format!(" jwks_fetches_during_fault={fetches}"));

    report.assert_clean();
    assert!(
        report.tolerated > 0,
        "{name}: the new key's token was never refused during the fault"
    );
    assert_eq!(report.denied(503), 0, "{name}: cached keys are served");
    // One background retry and one refetch for unknown kids per cooldown at most, each of
    // which may still be running when the next begins.
    let bound = 2 * (FAULT.as_secs() / COOLDOWN_SECONDS + 2);
    assert!(
        (1..=bound).contains(&fetches),
        "{name}: {fetches} fetches in {FAULT:?}, bound {bound}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_answering_500_changes_no_decision_and_a_new_key_is_accepted_after() {
    outage_with_cached_keys("jwks_500", |_| Behaviour::Failing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_hanging_changes_no_decision_and_a_new_key_is_accepted_after() {
    outage_with_cached_keys("jwks_hang", |_| Behaviour::Hang).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_slower_than_the_fetch_timeout_changes_no_decision_and_a_new_key_is_accepted_after() {
    let late = Duration::from_millis(3 * FETCH_TIMEOUT_MS);
    outage_with_cached_keys("jwks_slow", |k1| {
        Behaviour::Slow(late, vec![k1.jwk().clone()])
    })
    .await;
}

/// Keys never loaded: every token is answered 503 `keys_unavailable` (fail closed, not 401,
/// so clients keep good tokens), a request without one still 401; once the endpoint answers,
/// decisions are right again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_down_from_the_start_fails_closed_with_503_then_recovers() {
    let s = Stack::start(|_| Behaviour::Failing).await;
    let mut load = Load::start(
        "jwks_down_at_start",
        s.envoy.url(""),
        s.probes(&[KEYS_UNAVAILABLE]),
    );
    load.fault_begins();
    load.run_for(FAULT).await;
    assert_eq!(s.readyz().await, 503, "ready without keys");

    s.mock.set(serve(&[&s.k1]));
    load.fault_ends();
    load.until_recovered().await;
    load.run_for(Duration::from_secs(1)).await;
    let report = load.finish(&s.echo).await;
    report.print(&format!(" jwks_fetches={}", s.mock.hits()));

    report.assert_clean();
    assert!(report.denied(503) > 0, "no 503 while the keys were missing");
    assert_eq!(s.readyz().await, 200);
}
