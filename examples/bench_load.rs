//! Benchmark load generator (`scripts/bench.sh`), with no Envoy in the way:
//!
//! - `check`: calls ext_authz `Check` directly over gRPC at a fixed offered rate (open loop:
//!   latency is measured from when each call was due, so a slow server cannot hide its
//!   queueing), or as fast as `--concurrency` callers allow with `--rate 0`; prints checks/s
//!   and latency percentiles;
//! - `mint`: fetches `--count` client_credentials tokens from `/token`, one per line;
//! - `issue`: calls `/token` (client_credentials) for `--seconds` and prints tokens/s.
//!
//! ```text
//! cargo run --release --example bench_load -- check --addr http://127.0.0.1:9001 \
//!     --tokens tokens.txt --rate 5000 --seconds 5
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// Load generator for gatehouse benchmarks.
#[derive(Debug, Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Calls `Check` at a fixed rate and reports checks/s and latency percentiles.
    Check {
        /// The ext_authz server, e.g. `http://127.0.0.1:9001`.
        #[arg(long)]
        addr: String,
        /// Bearer tokens, one per line, used round-robin.
        #[arg(long)]
        tokens: PathBuf,
        /// Request path sent in the check.
        #[arg(long, default_value = "/v1/invoices/inv-1001")]
        path: String,
        /// `context_extensions` resource_type (empty: none).
        #[arg(long, default_value = "invoices")]
        resource_type: String,
        /// Offered checks per second; 0 runs closed loop with `--concurrency` callers.
        #[arg(long)]
        rate: u64,
        /// Callers in closed loop, and the cap on checks in flight in open loop.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Measured duration.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Unmeasured calls first, for this long.
        #[arg(long, default_value_t = 1)]
        warmup_seconds: u64,
    },
    /// Fetches tokens from `/token` and prints them one per line.
    Mint {
        #[arg(long)]
        url: String,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        client_secret: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Calls `/token` (client_credentials) for a while and reports tokens/s.
    Issue {
        #[arg(long)]
        url: String,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        client_secret: String,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Check {
            addr,
            tokens,
            path,
            resource_type,
            rate,
            concurrency,
            seconds,
            warmup_seconds,
        } => {
            let tokens = read_tokens(&tokens)?;
            let channel = tonic::transport::Endpoint::new(addr)?
                .tcp_nodelay(true)
                .connect()
                .await?;
            let requests: Arc<Vec<CheckRequest>> = Arc::new(
                tokens
                    .iter()
                    .map(|token| check_request(token, &path, &resource_type))
                    .collect(),
            );
            // Warm-up, then the measured run.
            if warmup_seconds > 0 {
                let warm = secs(warmup_seconds);
                run_checks(&channel, &requests, rate, concurrency, warm).await?;
            }
            let stats = run_checks(&channel, &requests, rate, concurrency, secs(seconds)).await?;
            stats.print(rate);
        }
        Command::Mint {
            url,
            client_id,
            client_secret,
            count,
            concurrency,
        } => {
            let client = reqwest::Client::new();
            let next = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..concurrency.max(1) {
                let (client, next) = (client.clone(), next.clone());
                let (url, id, secret) = (url.clone(), client_id.clone(), client_secret.clone());
                tasks.push(tokio::spawn(async move {
                    let mut minted = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < count {
                        minted.push(fetch_token(&client, &url, &id, &secret).await?);
                    }
                    anyhow::Ok(minted)
                }));
            }
            for task in tasks {
                for token in task.await?? {
                    println!("{token}");
                }
            }
        }
        Command::Issue {
            url,
            client_id,
            client_secret,
            concurrency,
            seconds,
        } => {
            let client = reqwest::Client::new();
            let issued = Arc::new(AtomicU64::new(0));
            let until = Instant::now() + secs(seconds);
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..concurrency.max(1) {
                let (client, issued) = (client.clone(), issued.clone());
                let (url, id, secret) = (url.clone(), client_id.clone(), client_secret.clone());
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < until {
                        fetch_token(&client, &url, &id, &secret).await?;
                        issued.fetch_add(1, Ordering::Relaxed);
                    }
                    anyhow::Ok(())
                }));
            }
            for task in tasks {
                task.await??;
            }
            let rate = issued.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
            println!("tokens_per_s={rate:.1}");
        }
    }
    Ok(())
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn read_tokens(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let tokens: Vec<String> = std::fs::read_to_string(path)?
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!tokens.is_empty(), "no tokens in {}", path.display());
    Ok(tokens)
}

async fn fetch_token(
    client: &reqwest::Client,
    url: &str,
    client_id: &str,
    client_secret: &str,
) -> anyhow::Result<String> {
    let response = client
        .post(url)
        .basic_auth(client_id, Some(client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .error_for_status()?;
    let body: serde_json::Value = response.json().await?;
    body.get("access_token")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no access_token in the /token response"))
}

/// The check Envoy would send for `GET path` with `Authorization: Bearer token`.
fn check_request(token: &str, path: &str, resource_type: &str) -> CheckRequest {
    let mut extensions = HashMap::new();
    if !resource_type.is_empty() {
        extensions.insert("resource_type".to_owned(), resource_type.to_owned());
    }
    let headers = HashMap::from([
        (":authority".to_owned(), "bench.local".to_owned()),
        (":method".to_owned(), "GET".to_owned()),
        (":path".to_owned(), path.to_owned()),
        ("authorization".to_owned(), format!("Bearer {token}")),
        ("user-agent".to_owned(), "bench_load".to_owned()),
    ]);
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".to_owned(),
                    path: path.to_owned(),
                    host: "bench.local".to_owned(),
                    scheme: "http".to_owned(),
                    protocol: "HTTP/1.1".to_owned(),
                    headers,
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            context_extensions: extensions,
            ..AttributeContext::default()
        }),
    }
}

/// What one run measured.
#[derive(Debug)]
struct Stats {
    latencies_us: Vec<u64>,
    elapsed: Duration,
    /// Checks that failed or answered anything but OK.
    not_ok: u64,
    /// Open loop: calls not sent because `concurrency` were already in flight.
    dropped: u64,
}

impl Stats {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[rank] as f64 / 1000.0
    }

    fn print(&self, offered: u64) {
        let rate = self.latencies_us.len() as f64 / self.elapsed.as_secs_f64();
        println!(
            "offered={} checks_per_s={rate:.0} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} \
             p999_ms={:.3} not_ok={} dropped={} checks={}",
            if offered == 0 {
                "max".to_owned()
            } else {
                offered.to_string()
            },
            self.percentile(0.50),
            self.percentile(0.90),
            self.percentile(0.99),
            self.percentile(0.999),
            self.not_ok,
            self.dropped,
            self.latencies_us.len(),
        );
    }
}

async fn run_checks(
    channel: &Channel,
    requests: &Arc<Vec<CheckRequest>>,
    rate: u64,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let not_ok = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let until = started + duration;
    let mut dropped = 0;

    // No rate: closed loop; a rate: one call due every `period_ns`.
    if let Some(period_ns) = 1_000_000_000u64.checked_div(rate) {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut dues = pace(started, until, Duration::from_nanos(period_ns));
        let mut calls = tokio::task::JoinSet::new();
        while let Some(due) = dues.recv().await {
            if in_flight.load(Ordering::Relaxed) >= concurrency {
                dropped += 1;
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let mut client = AuthorizationClient::new(channel.clone());
            let i = next.fetch_add(1, Ordering::Relaxed) % requests.len();
            let (requests, in_flight, not_ok) =
                (requests.clone(), in_flight.clone(), not_ok.clone());
            calls.spawn(async move {
                let ok = call(&mut client, &requests[i]).await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
                if !ok {
                    not_ok.fetch_add(1, Ordering::Relaxed);
                }
                // From when the call was due, not when it was sent.
                due.elapsed().as_micros() as u64
            });
            while let Some(done) = calls.try_join_next() {
                latencies.lock().await.push(done?);
            }
        }
        while let Some(done) = calls.join_next().await {
            latencies.lock().await.push(done?);
        }
    } else {
        let mut callers = Vec::new();
        for _ in 0..concurrency.max(1) {
            let mut client = AuthorizationClient::new(channel.clone());
            let (requests, latencies, not_ok, next) = (
                requests.clone(),
                latencies.clone(),
                not_ok.clone(),
                next.clone(),
            );
            callers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while Instant::now() < until {
                    let i = next.fetch_add(1, Ordering::Relaxed) % requests.len();
                    let sent = Instant::now();
                    let ok = call(&mut client, &requests[i]).await;
                    mine.push(sent.elapsed().as_micros() as u64);
                    if !ok {
                        not_ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.lock().await.extend(mine);
            }));
        }
        for caller in callers {
            caller.await?;
        }
    }

    let elapsed = started
        .elapsed()
        .min(duration.max(Duration::from_millis(1)));
    let mut latencies_us = std::mem::take(&mut *latencies.lock().await);
    latencies_us.sort_unstable();
    Ok(Stats {
        latencies_us,
        elapsed,
        not_ok: not_ok.load(Ordering::Relaxed),
        dropped,
    })
}

/// The due time of every call from `start` to `until`, one per `period`, each sent when it is
/// due. Tokio's timers fire on a 1 ms wheel: at 5,000/s an interval would release calls five
/// at a time up to a millisecond late, and that lateness would be counted as the server's
/// latency. A thread of its own sleeps to each due time instead (to within the OS timer's
/// slack, tens of microseconds); when it falls behind, the late calls are sent at once and
/// their lateness is counted.
fn pace(
    start: Instant,
    until: Instant,
    period: Duration,
) -> tokio::sync::mpsc::UnboundedReceiver<Instant> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut due = start;
        while due < until {
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if sender.send(due).is_err() {
                return;
            }
            due += period;
        }
    });
    receiver
}

async fn call(client: &mut AuthorizationClient<Channel>, request: &CheckRequest) -> bool {
    match client.check(request.clone()).await {
        Ok(response) => response
            .into_inner()
            .status
            .is_some_and(|status| status.code == 0),
        Err(_) => false,
    }
}
