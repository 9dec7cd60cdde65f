//! Soak load and verification for `scripts/soak.sh` (method and results in `docs/soak.md`).
//!
//! Sends requests through Envoy at a fixed rate (open loop: latency counted from when each
//! request was due) for `--seconds`, with `--tokens` distinct service tokens renewed before
//! they expire, bulk-auditor tokens (database path) and alice's tokens, and checks every
//! answer against what it must be. Meanwhile it rotates the signing key
//! (`gatehouse keys rotate`) every `--rotate-every` seconds and applies two policies in turn
//! (`gatehouse apply`) every `--apply-every` seconds: alice may read invoices under the first
//! and not under the second, so her newest token must be permitted or denied 403 by turns and
//! her previous one denied 401 as stale. Prints one row per `--window` (requests, errors,
//! latency percentiles, gatehouse's RSS and CPU use, the machine's load average, events) and a
//! summary; exits 1 on any error: a wrong decision, an unexpected status, or an admin step that
//! did not take effect.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use reqwest::Method;
use serde_json::Value;
use tokio::process::Command;

/// Soak load for gatehouse behind Envoy.
#[derive(Debug, Parser)]
struct Args {
    /// Envoy's listener, e.g. `http://127.0.0.1:10300`.
    #[arg(long)]
    envoy: String,
    /// gatehouse's HTTP listener (for `/token`).
    #[arg(long)]
    gatehouse: String,
    /// The `gatehouse serve` process whose RSS is reported.
    #[arg(long)]
    gatehouse_pid: u32,
    /// The gatehouse binary, for `apply` and `keys rotate`.
    #[arg(long)]
    gatehouse_bin: PathBuf,
    /// The configuration file of the served store.
    #[arg(long)]
    config: PathBuf,
    /// The policy under which alice may read invoices (applied already).
    #[arg(long)]
    policy_a: PathBuf,
    /// The same policy without alice's grant.
    #[arg(long)]
    policy_b: PathBuf,
    #[arg(long)]
    service_id: String,
    #[arg(long)]
    service_secret: String,
    /// The public client people sign in through (password grant).
    #[arg(long)]
    web_id: String,
    #[arg(long, default_value = "alice-demo-password")]
    alice_password: String,
    #[arg(long, default_value = "auditor-demo-password")]
    auditor_password: String,
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Requests per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Distinct service tokens, used round-robin.
    #[arg(long, default_value_t = 2000)]
    tokens: usize,
    #[arg(long, default_value_t = 120)]
    rotate_every: u64,
    #[arg(long, default_value_t = 30)]
    apply_every: u64,
    /// The configured `[keys] publish_lead_seconds`: a rotated key signs this long after.
    #[arg(long, default_value_t = 10)]
    publish_lead: u64,
    /// Seconds per report row.
    #[arg(long, default_value_t = 60)]
    window: u64,
}

/// Requests allowed in flight before a due request is dropped (and counted).
const IN_FLIGHT: usize = 512;
/// Bulk-auditor tokens (password grant: each costs an argon2 hash).
const AUDITOR_TOKENS: usize = 20;
/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(120);
/// The longest an `apply` or a rotation may take to show through Envoy.
const VISIBLE_WITHIN: Duration = Duration::from_secs(10);
const INVOICE: &str = "/v1/invoices/inv-1";

/// A token and when to renew it.
#[derive(Debug, Clone)]
struct Minted {
    token: String,
    renew_at: Instant,
}

/// alice's tokens: the newest with the status it must get, and the previous one (stale).
#[derive(Debug, Default)]
struct Alice {
    current: Option<(String, u16)>,
    stale: Option<String>,
}

/// What one report row counts.
#[derive(Debug, Default)]
struct Window {
    latencies_us: Vec<u64>,
    permits: u64,
    denies: u64,
    errors: u64,
    dropped: u64,
    events: Vec<String>,
    rss_kib: u64,
    /// gatehouse's CPU time (clock ticks) at the window's first and last sample, and when.
    cpu: Option<((u64, Instant), (u64, Instant))>,
    /// The machine's highest one-minute load average during the window.
    load: f64,
}

struct Soak {
    args: Args,
    http: reqwest::Client,
    started: Instant,
    service: Vec<RwLock<Minted>>,
    auditor: Vec<RwLock<Minted>>,
    alice: RwLock<Alice>,
    windows: Vec<Mutex<Window>>,
    errors: Mutex<Vec<String>>,
    error_count: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.rate > 0 && args.tokens > 0 && args.window > 0,
        "zero rate/tokens/window"
    );
    anyhow::ensure!(
        args.apply_every <= 300,
        "alice's tokens are renewed by the applies: --apply-every at most 300"
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()?;
    let windows = (0..args.seconds.div_ceil(args.window).max(1))
        .map(|_| Mutex::new(Window::default()))
        .collect();

    eprintln!(
        "soak: minting {} service tokens and {AUDITOR_TOKENS} auditor tokens",
        args.tokens
    );
    let mut soak = Soak {
        http,
        started: Instant::now(),
        service: Vec::new(),
        auditor: Vec::new(),
        alice: RwLock::default(),
        windows,
        errors: Mutex::default(),
        error_count: AtomicU64::new(0),
        args,
    };
    for _ in 0..soak.args.tokens {
        soak.service.push(RwLock::new(soak.service_token().await?));
    }
    for _ in 0..AUDITOR_TOKENS {
        let auditor = soak
            .password_token("bulk-auditor", &soak.args.auditor_password)
            .await?;
        soak.auditor.push(RwLock::new(auditor));
    }
    let alice = soak
        .password_token("alice", &soak.args.alice_password)
        .await?;
    soak.alice
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .current = Some((alice.token, 200));
    soak.started = Instant::now();
    let soak = Arc::new(soak);

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(renew(soak.clone()));
    tasks.spawn(admin(soak.clone()));
    tasks.spawn(sample_process(soak.clone()));
    tasks.spawn(report_rows(soak.clone()));
    load(&soak).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    tasks.abort_all();
    summary(&soak)
}

impl Soak {
    fn now_window(&self) -> usize {
        let index = self.started.elapsed().as_secs() / self.args.window;
        (index as usize).min(self.windows.len() - 1)
    }

    fn window_of(&self, at: Instant) -> &Mutex<Window> {
        let index = at.saturating_duration_since(self.started).as_secs() / self.args.window;
        &self.windows[(index as usize).min(self.windows.len() - 1)]
    }

    fn event(&self, text: String) {
        eprintln!(
            "soak: {:>5.1} s  {text}",
            self.started.elapsed().as_secs_f64()
        );
        self.windows[self.now_window()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .events
            .push(text);
    }

    fn error(&self, text: String) {
        self.error_count.fetch_add(1, Ordering::Relaxed);
        self.windows[self.now_window()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .errors += 1;
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        if errors.len() < 20 {
            eprintln!("soak: error: {text}");
            errors.push(text);
        }
    }

    async fn token(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Minted> {
        let response = request.send().await?.error_for_status()?;
        let body: Value = response.json().await?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no access_token in {body}"))?;
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(300));
        Ok(Minted {
            token: token.to_owned(),
            renew_at: Instant::now() + lifetime.saturating_sub(RENEW_BEFORE),
        })
    }

    async fn service_token(&self) -> anyhow::Result<Minted> {
        let request = self
            .http
            .post(format!("{}/token", self.args.gatehouse))
            .basic_auth(&self.args.service_id, Some(&self.args.service_secret))
            .form(&[("grant_type", "client_credentials")]);
        self.token(request).await
    }

    async fn password_token(&self, username: &str, password: &str) -> anyhow::Result<Minted> {
        let request = self
            .http
            .post(format!("{}/token", self.args.gatehouse))
            .form(&[
                ("grant_type", "password"),
                ("client_id", self.args.web_id.as_str()),
                ("username", username),
                ("password", password),
            ]);
        self.token(request).await
    }

    /// The status Envoy answers for `method path` with `token`, and whether a deny carried
    /// gatehouse's decision body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> Result<(u16, bool), String> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.args.envoy));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| format!("{status}, no body: {e}"))?;
        let decision: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        Ok((status, decision["decision"] == "Deny"))
    }
}

/// One request of the mix: what to send and the status it must get.
fn plan(soak: &Soak, tick: usize) -> (&'static str, Method, String, Option<String>, u16) {
    let service = || {
        soak.service[tick % soak.service.len()]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .token
            .clone()
    };
    match tick % 20 {
        10 | 11 => (
            "service delete",
            Method::DELETE,
            INVOICE.into(),
            Some(service()),
            403,
        ),
        12..=14 => {
            let auditor = soak.auditor[tick % soak.auditor.len()]
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .token
                .clone();
            let month = tick % 120;
            let path = format!(
                "/v1/ledgers/{}-{:02}/entries/e-{tick}",
                2016 + month / 12,
                month % 12 + 1
            );
            ("auditor ledger", Method::GET, path, Some(auditor), 200)
        }
        15 => ("no token", Method::GET, INVOICE.into(), None, 401),
        16 => (
            "garbage token",
            Method::GET,
            INVOICE.into(),
            Some("not-a-token".into()),
            401,
        ),
        17 | 18 => match soak
            .alice
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .current
            .clone()
        {
            Some((token, status)) => (
                "alice current",
                Method::GET,
                INVOICE.into(),
                Some(token),
                status,
            ),
            None => (
                "service read",
                Method::GET,
                INVOICE.into(),
                Some(service()),
                200,
            ),
        },
        19 => match soak
            .alice
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .stale
            .clone()
        {
            Some(token) => ("alice stale", Method::GET, INVOICE.into(), Some(token), 401),
            None => (
                "service read",
                Method::GET,
                INVOICE.into(),
                Some(service()),
                200,
            ),
        },
        _ => (
            "service read",
            Method::GET,
            format!("/v1/invoices/inv-{tick}"),
            Some(service()),
            200,
        ),
    }
}

/// Sends the mix at the fixed rate until the end.
async fn load(soak: &Arc<Soak>) {
    let until = soak.started + Duration::from_secs(soak.args.seconds);
    let mut ticks = tokio::time::interval(Duration::from_nanos(1_000_000_000 / soak.args.rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut tick = 0usize;
    loop {
        let due = ticks.tick().await.into_std();
        if due >= until {
            break;
        }
        tick += 1;
        if in_flight.load(Ordering::Relaxed) >= IN_FLIGHT {
            soak.window_of(due)
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .dropped += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (soak, in_flight) = (soak.clone(), in_flight.clone());
        tokio::spawn(async move {
            let (what, method, path, token, expected) = plan(&soak, tick);
            let answer = soak.send(method.clone(), &path, token.as_deref()).await;
            let latency = due.elapsed().as_micros() as u64;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            {
                let mut window = soak
                    .window_of(due)
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                window.latencies_us.push(latency);
                match answer {
                    Ok((200, _)) => window.permits += 1,
                    Ok((_, true)) => window.denies += 1,
                    _ => {}
                }
            }
            let wrong = match answer {
                Ok((status, decided)) if status == expected && (status == 200 || decided) => None,
                Ok((200, _)) => Some(format!(
                    "wrong decision: {what} {method} {path}: permitted, must be {expected}"
                )),
                Ok((status, true)) if expected == 200 => Some(format!(
                    "wrong decision: {what} {method} {path}: denied {status}"
                )),
                Ok((status, _)) => Some(format!(
                    "unexpected status: {what} {method} {path}: {status}, must be {expected}"
                )),
                Err(error) => Some(format!("unexpected: {what} {method} {path}: {error}")),
            };
            if let Some(wrong) = wrong {
                soak.error(wrong);
            }
        });
    }
}

/// Renews tokens before they expire, so that every token in the mix is valid when sent.
async fn renew(soak: Arc<Soak>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = Instant::now();
        for (pool, password) in [
            (&soak.service, None),
            (&soak.auditor, Some(&soak.args.auditor_password)),
        ] {
            for slot in pool {
                if slot.read().unwrap_or_else(PoisonError::into_inner).renew_at > now {
                    continue;
                }
                let minted = match password {
                    None => soak.service_token().await,
                    Some(password) => soak.password_token("bulk-auditor", password).await,
                };
                match minted {
                    Ok(minted) => *slot.write().unwrap_or_else(PoisonError::into_inner) = minted,
                    Err(error) => soak.error(format!("token renewal failed: {error}")),
                }
            }
        }
    }
}

/// Rotates the key and applies the two policies in turn, checking that each takes effect.
async fn admin(soak: Arc<Soak>) {
    let (mut next_apply, mut next_rotate) = (soak.args.apply_every, soak.args.rotate_every);
    let mut alice_may_read = true;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let elapsed = soak.started.elapsed().as_secs();
        if elapsed + 1 >= soak.args.seconds {
            // No change whose effect the load could no longer check.
            return;
        }
        if elapsed >= next_apply {
            next_apply += soak.args.apply_every;
            alice_may_read = !alice_may_read;
            apply(&soak, alice_may_read).await;
        }
        if elapsed >= next_rotate {
            next_rotate += soak.args.rotate_every;
            rotate(&soak).await;
        }
    }
}

async fn gatehouse(soak: &Soak, args: &[&str]) -> Result<String, String> {
    let output = Command::new(&soak.args.gatehouse_bin)
        .arg("--config")
        .arg(&soak.args.config)
        .args(args)
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Applies policy A (`alice_may_read`) or B. The change has reached the check path once
/// alice's previous token is refused as stale (a token minted meanwhile may already carry the
/// new permissions while the check path still decides with the old ones); from then on that
/// token must stay refused and a fresh one must get the new answer.
async fn apply(soak: &Soak, alice_may_read: bool) {
    let (name, file, expected) = if alice_may_read {
        ("A", &soak.args.policy_a, 200)
    } else {
        ("B", &soak.args.policy_b, 403)
    };
    let previous = {
        let mut alice = soak.alice.write().unwrap_or_else(PoisonError::into_inner);
        alice.stale = None;
        alice.current.take().map(|(token, _)| token)
    };
    let applied = Instant::now();
    if let Err(error) = gatehouse(soak, &["apply", &file.display().to_string()]).await {
        return soak.error(format!("apply {name} failed: {error}"));
    }
    if let Some(previous) = &previous {
        loop {
            match soak.send(Method::GET, INVOICE, Some(previous)).await {
                Ok((401, true)) => break,
                Ok((status, _)) if applied.elapsed() <= VISIBLE_WITHIN => {
                    // Still the old answer: the check path has not reloaded yet.
                    let before = if alice_may_read { 403 } else { 200 };
                    if status != before {
                        return soak.error(format!("alice's previous token answered {status}"));
                    }
                }
                other => {
                    return soak.error(format!(
                        "apply {name}: previous token still {other:?} after {VISIBLE_WITHIN:?}"
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let visible = applied.elapsed();
    let fresh = match soak
        .password_token("alice", &soak.args.alice_password)
        .await
    {
        Ok(fresh) => fresh.token,
        Err(error) => return soak.error(format!("alice's token after apply {name}: {error}")),
    };
    match soak.send(Method::GET, INVOICE, Some(&fresh)).await {
        Ok((status, _)) if status == expected => {}
        other => return soak.error(format!("apply {name}: a fresh token answered {other:?}")),
    }
    soak.event(format!(
        "apply {name}: old token stale after {} ms",
        visible.as_millis()
    ));
    let mut alice = soak.alice.write().unwrap_or_else(PoisonError::into_inner);
    alice.current = Some((fresh, expected));
    alice.stale = previous;
}

/// `gatehouse keys rotate`; after the publish lead, a new token must be signed by the new key
/// and permitted.
async fn rotate(soak: &Soak) {
    let output = match gatehouse(soak, &["keys", "rotate"]).await {
        Ok(output) => output,
        Err(error) => return soak.error(format!("keys rotate failed: {error}")),
    };
    let Some(kid) = output
        .strip_prefix("new key ")
        .and_then(|rest| rest.split(':').next())
        .map(str::to_owned)
    else {
        return soak.error(format!("keys rotate printed {output}"));
    };
    soak.event(format!("keys rotate: {}…", &kid[..8.min(kid.len())]));
    let rotated = Instant::now();
    tokio::time::sleep(Duration::from_secs(soak.args.publish_lead)).await;
    loop {
        match soak.service_token().await {
            Ok(minted) if kid_of(&minted.token).as_deref() == Some(kid.as_str()) => {
                match soak.send(Method::GET, INVOICE, Some(&minted.token)).await {
                    Ok((200, _)) => soak.event(format!(
                        "new key signing, its token permitted, {} ms after the rotation",
                        rotated.elapsed().as_millis()
                    )),
                    other => soak.error(format!("the new key's token answered {other:?}")),
                }
                return;
            }
            Ok(_)
                if rotated.elapsed()
                    < Duration::from_secs(soak.args.publish_lead) + VISIBLE_WITHIN =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(_) => return soak.error("the rotated key never signed".into()),
            Err(error) => return soak.error(format!("token after the rotation: {error}")),
        }
    }
}

fn kid_of(token: &str) -> Option<String> {
    let header = URL_SAFE_NO_PAD.decode(token.split('.').next()?).ok()?;
    let header: Value = serde_json::from_slice(&header).ok()?;
    header["kid"].as_str().map(str::to_owned)
}

/// gatehouse's resident set, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// gatehouse's CPU time so far (user and system), in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The machine's one-minute load average.
fn load_average() -> Option<f64> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    loadavg.split_whitespace().next()?.parse().ok()
}

/// Samples gatehouse's memory and CPU time, and the machine's load, every second.
async fn sample_process(soak: Arc<Soak>) {
    loop {
        let pid = soak.args.gatehouse_pid;
        match (rss_kib(pid), cpu_ticks(pid)) {
            (Some(kib), Some(ticks)) => {
                let mut window = soak.windows[soak.now_window()]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                window.rss_kib = window.rss_kib.max(kib);
                let now = (ticks, Instant::now());
                window.cpu = Some(window.cpu.map_or((now, now), |(first, _)| (first, now)));
                window.load = window.load.max(load_average().unwrap_or(0.0));
            }
            _ => soak.error("gatehouse is gone".into()),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// gatehouse's CPU use during the window, in percent of one core (100 ticks per second, as
/// Linux reports them everywhere).
fn cpu_percent(window: &Window) -> f64 {
    match window.cpu {
        Some(((first, at), (last, then))) if then > at => {
            (last - first) as f64 / (then - at).as_secs_f64()
        }
        _ => f64::NAN,
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

fn row(index: usize, window: &mut Window, seconds: u64) -> String {
    window.latencies_us.sort_unstable();
    let l = &window.latencies_us;
    format!(
        "| {:>3}–{:<3} | {:>6} | {:>6} | {:>6} | {:>3} | {:>3} | {:>6.2} | {:>6.2} | {:>6.2} | {:>7.2} | {:>5.1} | {:>4.0} | {:>4.1} | {} |",
        index as u64 * seconds,
        (index as u64 + 1) * seconds,
        l.len(),
        window.permits,
        window.denies,
        window.errors,
        window.dropped,
        percentile(l, 0.50),
        percentile(l, 0.90),
        percentile(l, 0.99),
        l.last().map_or(f64::NAN, |max| *max as f64 / 1000.0),
        window.rss_kib as f64 / 1024.0,
        cpu_percent(window),
        window.load,
        window.events.join("; "),
    )
}

const HEADER: &str = "| seconds | requests | permits | denies | errors | dropped | p50 ms | p90 ms | p99 ms | max ms | RSS MiB | CPU % | load | events |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|";

/// Prints each row once its window (and its requests' answers) is over.
async fn report_rows(soak: Arc<Soak>) {
    println!("{HEADER}");
    for index in 0..soak.windows.len() {
        let end = soak.started + Duration::from_secs((index as u64 + 1) * soak.args.window);
        let end = end.min(soak.started + Duration::from_secs(soak.args.seconds));
        tokio::time::sleep_until((end + Duration::from_secs(1)).into()).await;
        let mut window = soak.windows[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        println!("{}", row(index, &mut window, soak.args.window));
    }
}

fn summary(soak: &Soak) -> anyhow::Result<()> {
    let windows: Vec<std::sync::MutexGuard<'_, Window>> = soak
        .windows
        .iter()
        .map(|w| w.lock().unwrap_or_else(PoisonError::into_inner))
        .collect();
    let requests: usize = windows.iter().map(|w| w.latencies_us.len()).sum();
    let dropped: u64 = windows.iter().map(|w| w.dropped).sum();
    let errors = soak.error_count.load(Ordering::Relaxed);
    let p99 = |w: &Window| {
        let mut l = w.latencies_us.clone();
        l.sort_unstable();
        percentile(&l, 0.99)
    };
    let (first, last) = (&windows[0], &windows[windows.len() - 1]);
    println!();
    println!(
        "soak: {} s at {}/s, {} service tokens: requests={requests} errors={errors} dropped={dropped} \
         p99_first_ms={:.2} p99_last_ms={:.2} rss_first_mib={:.1} rss_last_mib={:.1}",
        soak.args.seconds,
        soak.args.rate,
        soak.args.tokens,
        p99(first),
        p99(last),
        first.rss_kib as f64 / 1024.0,
        last.rss_kib as f64 / 1024.0,
    );
    for error in soak
        .errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        println!("error: {error}");
    }
    anyhow::ensure!(errors == 0, "{errors} errors");
    Ok(())
}
