//! The admin HTTP listener (`--admin-listen`, default 127.0.0.1:9644): `/metrics` (OpenMetrics
//! text), `/health` (the process serves HTTP) and `/ready` (every shard has recovered its logs
//! and accepts clients, and the broker is not stopping).
//!
//! It runs on its own thread, never on a shard: a scrape sends each shard one message asking
//! for a copy of its metrics and waits for the copies here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::broker::{snapshot, Job, ShardMsg};
use crate::metrics::{self, ShardSnapshot};
use crate::runtime::mailbox::Outbox;

/// How long a scrape waits for a shard's copy, and a client for its request to arrive.
const WAIT: Duration = Duration::from_secs(5);
/// Longest request head read.
const REQUEST_BYTES_MAX: usize = 8192;

/// Whether the broker is ready for clients.
#[derive(Debug)]
pub struct Readiness {
    shards: usize,
    recovered: AtomicUsize,
    stopping: AtomicBool,
}

impl Readiness {
    pub fn new(shards: usize) -> Arc<Readiness> {
        Arc::new(Readiness { shards, recovered: AtomicUsize::new(0), stopping: AtomicBool::new(false) })
    }

    /// A shard has opened (recovered) its logs and listens for clients.
    pub fn shard_ready(&self) {
        self.recovered.fetch_add(1, Ordering::SeqCst);
    }

    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// `Ok` when ready, or why not.
    pub fn check(&self) -> Result<(), NotReady> {
        let ready = self.recovered.load(Ordering::SeqCst);
        if self.stopping.load(Ordering::SeqCst) {
            Err(NotReady::Stopping)
        } else if ready < self.shards {
            Err(NotReady::Recovering { ready, shards: self.shards })
        } else {
            Ok(())
        }
    }
}

/// Why `/ready` says no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("stopping")]
    Stopping,
    #[error("recovering: {ready} of {shards} shards ready")]
    Recovering { ready: usize, shards: usize },
}

/// Why a request to the admin endpoint could not be read.
#[derive(Debug, thiserror::Error)]
enum BadRequest {
    #[error("request head too large")]
    HeadTooLarge,
    #[error("reading the request: {0}")]
    Read(std::io::Error),
    #[error("not an HTTP/1.x request")]
    NotHttp1,
}

/// Binds the listener (so a bad address fails start-up) and serves it on a new thread.
pub fn spawn(listen: SocketAddr, peers: Outbox<ShardMsg>, readiness: Arc<Readiness>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} for the admin endpoint (--admin-listen): {e}"))?;
    std::thread::Builder::new().name("admin".into()).spawn(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => serve(stream, &peers, &readiness),
                Err(e) => tracing::warn!(error = %e, "admin endpoint: accept failed"),
            }
        }
    })?;
    tracing::info!(%listen, "admin endpoint: /metrics /health /ready");
    Ok(())
}

fn serve(mut stream: TcpStream, peers: &Outbox<ShardMsg>, readiness: &Readiness) {
    let _ = stream.set_read_timeout(Some(WAIT));
    let _ = stream.set_write_timeout(Some(WAIT));
    let (status, content_type, body) = match read_request(&mut stream) {
        Err(reason) => ("400 Bad Request", "text/plain; charset=utf-8", format!("{reason}\n")),
        Ok((method, _)) if method != "GET" && method != "HEAD" => {
            ("405 Method Not Allowed", "text/plain; charset=utf-8", "use GET\n".into())
        }
        Ok((_, path)) => match path.split('?').next().unwrap_or("") {
            "/metrics" => {
                ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", metrics::encode(scrape(peers)))
            }
            "/health" => ("200 OK", "text/plain; charset=utf-8", "ok\n".into()),
            "/ready" => match readiness.check() {
                Ok(()) => ("200 OK", "text/plain; charset=utf-8", "ready\n".into()),
                Err(why) => ("503 Service Unavailable", "text/plain; charset=utf-8", format!("not ready: {why}\n")),
            },
            _ => ("404 Not Found", "text/plain; charset=utf-8", "try /metrics, /health or /ready\n".into()),
        },
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes()));
}

/// The method and path of an HTTP/1.x request; the rest of the head is read and ignored.
fn read_request(stream: &mut TcpStream) -> Result<(String, String), BadRequest> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > REQUEST_BYTES_MAX {
            return Err(BadRequest::HeadTooLarge);
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(BadRequest::Read(e)),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next().unwrap_or("").split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(path), Some(version)) if version.starts_with("HTTP/1.") => {
            Ok((method.to_string(), path.to_string()))
        }
        _ => Err(BadRequest::NotHttp1),
    }
}

/// Asks every shard for a copy of its metrics; a shard that does not answer in time is left out.
fn scrape(peers: &Outbox<ShardMsg>) -> Vec<ShardSnapshot> {
    let mut waiting = Vec::with_capacity(peers.shards());
    for id in 0..peers.shards() {
        let (tx, rx) = flume::bounded(1);
        let job: Job = Box::new(move |shard| {
            Box::pin(async move {
                let _ = tx.send_async(snapshot::take(&shard)).await;
            })
        });
        if peers.send_blocking(id, ShardMsg::Run(job), WAIT).is_ok() {
            waiting.push((id, rx));
        }
    }
    waiting
        .into_iter()
        .filter_map(|(id, rx)| {
            let got = rx.recv_timeout(WAIT).ok();
            if got.is_none() {
                tracing::warn!(shard = id, "admin endpoint: shard did not answer the scrape in time");
            }
            got
        })
        .collect()
}
