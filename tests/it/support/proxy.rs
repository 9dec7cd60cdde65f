//! A TCP proxy in front of a dependency, which tests can cut, slow down and restore, so that
//! outages never touch the shared server other tests use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything.
    Pass,
    /// Forward, but hold every chunk this long first.
    Delay(Duration),
    /// A network partition: connections stay open (new ones are accepted) but nothing passes
    /// until the mode changes; what was held back is delivered then, as TCP would once the
    /// partition heals.
    Blackhole,
    /// Drop every open connection and refuse new ones: a server that went away, as during a
    /// restart.
    Cut,
}

/// A running proxy; stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, watcher) = watch::channel(Mode::Pass);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *watcher.borrow() == Mode::Cut {
                    drop(client);
                    continue;
                }
                tokio::spawn(relay(client, target, watcher.clone()));
            }
        });
        Self {
            addr,
            mode: Arc::new(mode),
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

async fn relay(client: TcpStream, target: SocketAddr, mode: watch::Receiver<Mode>) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = pump(client_read, server_write, mode.clone()) => {}
        _ = pump(server_read, client_write, mode.clone()) => {}
        _ = cut(mode) => {}
    }
}

async fn cut(mut mode: watch::Receiver<Mode>) {
    let _ = mode.wait_for(|m| *m == Mode::Cut).await;
}

async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    mode: watch::Receiver<Mode>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
        }
        let current = *mode.borrow();
        if let Mode::Delay(delay) = current {
            tokio::time::sleep(delay).await;
        }
        if current == Mode::Blackhole {
            let mut mode = mode.clone();
            let _ = mode.wait_for(|m| *m != Mode::Blackhole).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
