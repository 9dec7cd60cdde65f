//! Timing of failed credential checks at `/token` (B29): does an answer take longer for a
//! known user than an unknown one, or for a client secret that shares a longer prefix with
//! the real one? A measurement, not a test: it prints medians and leaves the verdict to the
//! reader (see docs/benchmarks.md).
//!
//! It starts gatehouse in-process on a temporary SQLite store with the OAuth fixture of the
//! integration tests (`tests/it/fixtures/oauth.yaml`) and the brute-force limit raised so that
//! no attempt is refused early, then sends, interleaved so that drift hits both sides alike:
//!
//! - `--runs` password grants `alice`/wrong and `nobody`/wrong (client `svc-reports`);
//! - `--runs` client_credentials requests whose Basic secret shares 0 and 14 leading
//!   characters with the real secret.
//!
//! ```text
//! cargo run --release --example auth_timing -- --runs 300
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use gatehouse::clock::SystemClock;
use gatehouse::config::Config;

/// Timing of failed credential checks.
#[derive(Debug, Parser)]
struct Args {
    /// Measured requests per case.
    #[arg(long, default_value_t = 300)]
    runs: usize,
    /// Unmeasured requests per case first.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
}

const FIXTURE: &str = include_str!("../tests/it/fixtures/oauth.yaml");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.server.grpc_addr = "127.0.0.1:0".parse()?;
    config.server.http_addr = "127.0.0.1:0".parse()?;
    config.store.url = format!("sqlite://{}", dir.path().join("timing.db").display());
    config.keys.encryption_key_path = dir.path().join("encryption-key");
    config.log.level = "warn".into();
    // Every case here fails on purpose: no lock may cut a series short.
    config.limits.max_failures = 1000;
    anyhow::ensure!(
        2 * (args.runs + args.warmup) < 1000,
        "at most {} runs",
        1000 / 2 - args.warmup - 1
    );

    let store = gatehouse::server::open_store(&config).await?;
    let report = gatehouse::admin::apply(store.as_ref(), FIXTURE).await?;
    let reports = report
        .created_clients
        .iter()
        .find(|client| client.name == "svc-reports")
        .ok_or_else(|| anyhow::anyhow!("the fixture has no svc-reports"))?;
    let (id, secret) = (
        reports.id.clone(),
        reports
            .secret
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default(),
    );
    let running = gatehouse::server::spawn(config, Arc::new(SystemClock)).await?;
    let url = format!("http://{}/token", running.http_addr);
    let http = reqwest::Client::new();

    // Secrets of the real secret's length sharing 0 and 14 leading characters with it.
    let flip = |c: char| if c == 'A' { 'B' } else { 'A' };
    let far: String = secret.chars().map(flip).collect();
    let near: String = secret
        .chars()
        .enumerate()
        .map(|(at, c)| if at < 14 { c } else { flip(c) })
        .collect();

    let password = |user: &'static str| {
        let (http, url, id, secret) = (http.clone(), url.clone(), id.clone(), secret.clone());
        move || {
            let request = http.post(&url).basic_auth(&id, Some(&secret)).form(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", "wrong"),
            ]);
            async move { timed(request, 400).await }
        }
    };
    let client_secret = |presented: String| {
        let (http, url, id) = (http.clone(), url.clone(), id.clone());
        move || {
            let request = http
                .post(&url)
                .basic_auth(&id, Some(&presented))
                .form(&[("grant_type", "client_credentials")]);
            async move { timed(request, 401).await }
        }
    };

    let (alice, nobody) = compare(password("alice"), password("nobody"), &args).await?;
    print_pair(
        "password grant, alice/wrong vs nobody/wrong",
        &alice,
        &nobody,
    );
    let (zero, fourteen) = compare(client_secret(far), client_secret(near), &args).await?;
    print_pair(
        "Basic secret sharing 0 vs 14 leading characters",
        &zero,
        &fourteen,
    );

    running.stop().await;
    Ok(())
}

/// Sends one request, checks its status, and returns how long the answer took.
async fn timed(request: reqwest::RequestBuilder, expected: u16) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = request.send().await?;
    let status = response.status().as_u16();
    response.bytes().await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(status == expected, "expected {expected}, got {status}");
    Ok(elapsed)
}

/// Runs `a` and `b` alternately, `warmup` times unmeasured then `runs` times each.
async fn compare<A, B, FA, FB>(
    a: A,
    b: B,
    args: &Args,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)>
where
    A: Fn() -> FA,
    B: Fn() -> FB,
    FA: std::future::Future<Output = anyhow::Result<Duration>>,
    FB: std::future::Future<Output = anyhow::Result<Duration>>,
{
    for _ in 0..args.warmup {
        a().await?;
        b().await?;
    }
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for round in 0..args.runs {
        // Alternating which goes first cancels any effect of order.
        if round % 2 == 0 {
            first.push(a().await?);
            second.push(b().await?);
        } else {
            second.push(b().await?);
            first.push(a().await?);
        }
    }
    Ok((first, second))
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

fn print_pair(what: &str, a: &[Duration], b: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (median_a, median_b) = (percentile(a, 0.5), percentile(b, 0.5));
    println!("{what} ({} runs each)", a.len());
    for (label, samples, median) in [("first ", a, median_a), ("second", b, median_b)] {
        println!(
            "  {label}  median {:8.3} ms   p10 {:8.3} ms   p90 {:8.3} ms",
            ms(median),
            ms(percentile(samples, 0.1)),
            ms(percentile(samples, 0.9)),
        );
    }
    let difference = ms(median_b) - ms(median_a);
    println!(
        "  difference of medians {difference:+.3} ms ({:+.1} %)",
        100.0 * difference / ms(median_a)
    );
}
