//! The `gatehouse` command: boots the server or runs an administrative action.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use gatehouse::check::{AccessRequest, read_credential};
use gatehouse::clock::{Clock as _, SystemClock};
use gatehouse::config::{Config, Overrides};
use gatehouse::keyring::KeyChange;
use gatehouse::secret::Secret;
use gatehouse::server::{Gatehouse, open_store, read_encryption_key, spawn};

/// Envoy ext_authz decisions and an embedded OAuth 2.0 issuer.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version)]
struct Cli {
    /// Configuration file (TOML); embedded defaults when omitted.
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides `[server] grpc_addr`.
    #[arg(long, global = true, value_name = "ADDR")]
    grpc_addr: Option<String>,
    /// Overrides `[server] http_addr`.
    #[arg(long, global = true, value_name = "ADDR")]
    http_addr: Option<String>,
    /// Overrides `[store] url` (kept out of `Debug`: it may carry a password).
    #[arg(long, global = true, value_name = "URL", value_parser = secret_value)]
    store_url: Option<Secret>,
    /// Overrides `[log] level`.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    /// Overrides `[log] format` (`plain` or `json`).
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the ext_authz gRPC listener and the HTTP listener.
    Serve,
    /// Make the store equal to a YAML policy file, atomically.
    Apply {
        /// The policy file.
        policy: PathBuf,
    },
    /// List what the store holds.
    List {
        #[arg(value_enum)]
        what: Listing,
    },
    /// Administer one client.
    Client {
        #[command(subcommand)]
        action: ClientAction,
    },
    /// Rotate, list or drop the issuer's signing keys (kept in the store).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Read a password from standard input and print its argon2id hash for a policy file.
    HashPassword,
    /// Dry-run: read a bearer token from standard input and print the decision for a request.
    Check {
        #[arg(long, default_value = "GET")]
        method: String,
        /// Request target (path and optional query).
        #[arg(long)]
        path: String,
        /// `resource_type`, as a route's context extensions would supply it.
        #[arg(long)]
        resource_type: Option<String>,
        /// `resource_name`, as a route's context extensions would supply it.
        #[arg(long)]
        resource_name: Option<String>,
        /// The request's host, for the route table.
        #[arg(long, default_value = "")]
        host: String,
    },
}

#[derive(Debug, Subcommand)]
enum ClientAction {
    /// Give a confidential client a new secret, printed once; its tokens are stale at once.
    RotateSecret {
        /// The client's name in the policy file.
        name: String,
        /// Seconds the previous secret keeps working (0: it stops at once; at most 30 days).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=2_592_000))]
        grace: u32,
    },
}

/// Signing-key commands.
#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Publish a new key now; it signs after `[keys] publish_lead_seconds`, and the keys it
    /// replaces are dropped once their last token has expired.
    Rotate,
    /// Every key with its state (scheduled, pending, signing, retired, dropped) and schedule.
    List,
    /// Remove a key at once (emergency): it leaves /jwks and its tokens are refused.
    Drop {
        /// The key's `kid`, as `gatehouse keys list` shows it. A thumbprint may begin with
        /// `-`, so the value is never read as an option.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Listing {
    Clients,
    Accounts,
    Resources,
    Roles,
    Grants,
}

fn secret_value(text: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(text))
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if config.log.format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = Overrides {
        grpc_addr: cli.grpc_addr.clone(),
        http_addr: cli.http_addr.clone(),
        store_url: cli.store_url.clone(),
        log_level: cli.log_level.clone(),
        log_format: cli.log_format.clone(),
    };
    let config = match Config::load_with(cli.config.as_deref(), &flags) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("gatehouse: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    match run(cli.command, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gatehouse: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Apply { policy } => {
            let text = std::fs::read_to_string(&policy)
                .with_context(|| format!("cannot read {}", policy.display()))?;
            let store = open_store(&config).await?;
            let report = gatehouse::admin::apply(store.as_ref(), &text).await?;
            for client in &report.created_clients {
                match &client.secret {
                    Some(secret) => println!(
                        "created client \"{}\": client_id={} client_secret={}",
                        client.name,
                        client.id,
                        secret.expose()
                    ),
                    None => println!(
                        "created client \"{}\": client_id={}",
                        client.name, client.id
                    ),
                }
            }
            for subject in &report.bumped {
                println!("permissions changed: {} {}", subject.kind(), subject.id());
            }
            println!(
                "applied {} (generation {})",
                policy.display(),
                report.generation
            );
            Ok(())
        }
        Command::List { what } => list(config, what).await,
        Command::Client {
            action: ClientAction::RotateSecret { name, grace },
        } => rotate_secret(config, &name, grace).await,
        Command::Keys { action } => keys(config, action).await,
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!password.is_empty(), "no password on standard input");
            println!("{}", gatehouse::credentials::hash_password(password)?);
            Ok(())
        }
        Command::Check {
            method,
            path,
            resource_type,
            resource_name,
            host,
        } => {
            let mut token = String::new();
            std::io::stdin().read_to_string(&mut token)?;
            let header = format!("Bearer {}", token.trim());
            let values = [header.as_str()];
            let gatehouse = Gatehouse::new(config, Arc::new(SystemClock)).await?;
            let request = AccessRequest {
                method: &method,
                target: &path,
                host: &host,
                credential: read_credential(&values),
                resource_type: resource_type.as_deref(),
                resource_name: resource_name.as_deref(),
            };
            let checked = gatehouse.check(&request, None).await;
            println!("{}", serde_json::to_string_pretty(&checked.decision)?);
            println!("status: {}", checked.outcome.http_status());
            Ok(())
        }
    }
}

async fn rotate_secret(config: Config, name: &str, grace: u32) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let now = SystemClock.now();
    let rotation =
        gatehouse::admin::rotate_client_secret(store.as_ref(), name, i64::from(grace), now).await?;
    println!(
        "rotated secret of client \"{name}\": client_id={} client_secret={}",
        rotation.client_id,
        rotation.secret.expose()
    );
    match rotation.previous_expires_at {
        Some(until) => {
            println!("previous secret accepted for {grace} s more (until Unix time {until})")
        }
        None => println!("previous secret no longer accepted"),
    }
    println!(
        "permissions changed: client {} (version {})",
        rotation.client_id, rotation.version
    );
    println!("generation {}", rotation.generation);
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let running = spawn(config, Arc::new(SystemClock)).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

async fn keys(mut config: Config, action: KeysAction) -> anyhow::Result<()> {
    use gatehouse::admin::keys::{drop_key, list, rotate, utc};

    // A one-shot command may wait for a connection longer than a check would.
    config.store.query_timeout_ms = config.store.query_timeout_ms.max(5_000);
    let store = open_store(&config).await?;
    let now = SystemClock.now();
    let optional = |at: Option<i64>| at.map_or_else(|| "-".to_owned(), utc);
    match action {
        KeysAction::Rotate => {
            let stored = store.signing_keys().await?;
            let empty = stored.iter().all(|record| record.times.dropped(now));
            let kek = read_encryption_key(&config.keys.encryption_key_path, empty)?;
            let rotation = rotate(store.as_ref(), &kek, config.rotation_settings(), now).await?;
            println!(
                "new key {}: published now, signs from {}",
                rotation.kid,
                utc(rotation.times.sign_from)
            );
            for (kid, times) in &rotation.retiring {
                println!(
                    "key {kid}: signs until {}, dropped at {}",
                    optional(times.retire_at),
                    optional(times.drop_at)
                );
            }
        }
        KeysAction::List => {
            for (record, state) in list(store.as_ref(), now).await? {
                let times = record.times;
                println!(
                    "{}\t{}\tcreated={}\tpublish={}\tsign_from={}\tretire={}\tdrop={}",
                    record.kid,
                    state.as_str(),
                    utc(times.created_at),
                    utc(times.publish_at),
                    utc(times.sign_from),
                    optional(times.retire_at),
                    optional(times.drop_at)
                );
            }
        }
        KeysAction::Drop { kid } => {
            let changes = drop_key(store.as_ref(), &kid, now).await?;
            println!("dropped key {kid}");
            for change in changes {
                if let KeyChange::Reschedule { kid, .. } = change {
                    println!("key {kid} signs new tokens from now on");
                }
            }
        }
    }
    Ok(())
}

async fn list(config: Config, what: Listing) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    match what {
        Listing::Clients => {
            for c in store.list_clients().await? {
                let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
                println!(
                    "{}\t{}\t{}\tgrants={}\tscopes={}\tversion={}{}",
                    c.id,
                    c.name,
                    c.kind.as_str(),
                    grants.join(","),
                    c.scopes.join(","),
                    c.version,
                    if c.disabled { "\tdisabled" } else { "" }
                );
            }
        }
        Listing::Accounts => {
            for a in store.list_accounts().await? {
                println!(
                    "{}\tversion={}{}",
                    a.username,
                    a.version,
                    if a.disabled { "\tdisabled" } else { "" }
                );
            }
        }
        Listing::Resources => {
            for r in store.snapshot().await?.resources {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    r.id, r.kind, r.name, r.action, r.url, r.description
                );
            }
        }
        Listing::Roles => {
            for (role, resources) in store.list_roles().await? {
                println!("{role}\t{}", resources.join(","));
            }
        }
        Listing::Grants => {
            for grant in store.list_grants().await? {
                println!(
                    "{}\t{}\t{}",
                    grant.subject.kind(),
                    grant.subject.id(),
                    grant.role
                );
            }
        }
    }
    Ok(())
}
