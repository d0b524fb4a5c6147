//! One client connection: admitted under the connection caps, frames read with their size
//! checked and their bytes charged to the request budgets before anything is allocated,
//! requests handled concurrently and answered in request order, stalled and idle connections
//! closed.

use std::cell::Cell;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};

use crate::broker::Broker;
use crate::config::ConnectionCaps;
use crate::kafka::{handle_request, Outcome};
use crate::limits::{IN_FLIGHT_PER_CONNECTION_MAX, SLOW_REQUEST};

/// Open connections of the whole broker, counted for `--max-connections` and
/// `--max-connections-per-ip`. Shared by every shard; touched only when a connection opens or
/// closes, never per request.
#[derive(Debug, Default)]
pub struct ConnectionCounts {
    caps: ConnectionCaps,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

pub use crate::metrics::Refusal;

/// A counted connection; dropping it gives its place back.
#[derive(Debug)]
pub struct Admitted {
    counts: Arc<ConnectionCounts>,
    ip: IpAddr,
}

impl ConnectionCounts {
    pub fn new(caps: ConnectionCaps) -> Arc<Self> {
        Arc::new(ConnectionCounts { caps, ..ConnectionCounts::default() })
    }

    /// Counts a new connection from `ip`, or says which cap it would exceed.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let total = self.total.fetch_add(1, Ordering::AcqRel) + 1;
        if self.caps.total.is_some_and(|max| total > max) {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::MaxConnections);
        }
        if self.caps.per_ip_counted() {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let open = per_ip.entry(ip).or_default();
            if self.caps.for_ip(ip).is_some_and(|max| *open >= max) {
                drop(per_ip);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::MaxConnectionsPerIp);
            }
            *open += 1;
        }
        Ok(Admitted { counts: self.clone(), ip })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let counts = &self.counts;
        counts.total.fetch_sub(1, Ordering::AcqRel);
        if counts.caps.per_ip_counted() {
            let mut per_ip = counts.per_ip.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(open) = per_ip.get_mut(&self.ip) {
                *open -= 1;
                if *open == 0 {
                    per_ip.remove(&self.ip);
                }
            }
        }
    }
}

/// Why the broker closed a connection.
#[derive(Debug)]
enum Closing {
    /// Stalled in the middle of a request for `--request-read-timeout-ms`.
    ReadTimeout,
    /// Nothing in progress and nothing read for `--connections-max-idle-ms`.
    Idle,
    Other(String),
}

impl std::fmt::Display for Closing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closing::ReadTimeout => f.write_str("stalled in the middle of a request (request-read-timeout-ms)"),
            Closing::Idle => f.write_str("idle (connections-max-idle-ms)"),
            Closing::Other(reason) => f.write_str(reason),
        }
    }
}

/// A frame and the request-budget permits its bytes are charged to, held until it is answered.
struct Frame {
    bytes: Bytes,
    _connection_permit: StaticPermit,
    _shard_permit: StaticPermit,
}

/// What the reader and the writer of one connection share.
struct Activity {
    /// Requests read and not yet answered.
    pending: Cell<usize>,
    /// Last time a frame was read or a response written.
    last: Cell<Instant>,
}

impl Activity {
    fn idle_for(&self) -> std::time::Duration {
        if self.pending.get() > 0 {
            std::time::Duration::ZERO
        } else {
            self.last.get().elapsed()
        }
    }
}

/// Reads into `buf` until it is full. A read that waits longer than the stream's read timeout
/// fails with `TimedOut` and consumes nothing, so waiting goes on until `stalled` says stop.
async fn read_full(
    stream: &mut (impl futures_lite::AsyncRead + Unpin),
    buf: &mut [u8],
    mut stalled: impl FnMut(usize, Instant) -> Option<Closing>,
) -> Result<bool, Closing> {
    let mut got = 0;
    let mut progress = Instant::now();
    while got < buf.len() {
        match stream.read(&mut buf[got..]).await {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(Closing::Other("the client closed the connection mid-request".into())),
            Ok(n) => {
                got += n;
                progress = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                if let Some(closing) = stalled(got, progress) {
                    return Err(closing);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(Closing::Other(format!("read failed: {e}"))),
        }
    }
    Ok(true)
}

/// Reads one frame: a big-endian i32 size, then that many bytes. The size is checked against
/// the limit, and charged to the connection's and then the shard's request budget, before
/// anything is allocated; while either is spent the socket is not read (backpressure).
async fn read_frame(
    shard: &Broker,
    stream: &mut (impl futures_lite::AsyncRead + Unpin),
    connection_budget: &Rc<Semaphore>,
    activity: &Activity,
) -> Result<Option<Frame>, Closing> {
    let config = &shard.config;
    let (idle_max, read_timeout) = (config.connections_max_idle, config.request_read_timeout);
    let mut size = [0u8; 4];
    let between_requests = |got: usize, progress: Instant| match got {
        0 if activity.idle_for() >= idle_max => Some(Closing::Idle),
        0 => None,
        _ if progress.elapsed() >= read_timeout => Some(Closing::ReadTimeout),
        _ => None,
    };
    if !read_full(stream, &mut size, between_requests).await? {
        return Ok(None);
    }
    let size = i32::from_be_bytes(size);
    let limit = config.request_bytes_max;
    if size < 8 || size as usize > limit {
        return Err(Closing::Other(format!("request size {size} is outside 8..={limit} bytes (request-bytes-max)")));
    }
    let units = size as u64;
    let closing = |e| Closing::Other(format!("connection closing: {e}"));
    let connection_permit = connection_budget.acquire_static_permit(units).await.map_err(closing)?;
    let shard_permit = shard.request_budget.acquire_static_permit(units).await.map_err(closing)?;
    let mut buf = BytesMut::zeroed(size as usize);
    let mid_request =
        |_: usize, progress: Instant| (progress.elapsed() >= read_timeout).then_some(Closing::ReadTimeout);
    if !read_full(stream, &mut buf, mid_request).await? {
        return Err(Closing::Other("the client closed the connection mid-request".into()));
    }
    Ok(Some(Frame { bytes: buf.freeze(), _connection_permit: connection_permit, _shard_permit: shard_permit }))
}

/// Counts a request as in progress on its shard until dropped, even if its task is cancelled.
struct InFlight(Rc<Broker>, i16);

impl InFlight {
    fn new(shard: &Rc<Broker>, api_key: i16) -> Self {
        shard.in_flight.set(shard.in_flight.get() + 1);
        *shard.in_flight_apis.borrow_mut().entry(api_key).or_default() += 1;
        InFlight(shard.clone(), api_key)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get() - 1);
        if let Some(n) = self.0.in_flight_apis.borrow_mut().get_mut(&self.1) {
            *n -= 1;
        }
    }
}

/// `SO_SNDTIMEO` of the socket `fd`.
fn set_send_timeout(fd: std::os::fd::RawFd, timeout: std::time::Duration) {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: setsockopt reads a timeval of the size given from `tv`.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
}

/// Serves one client connection until it closes, fails, stalls or idles out.
pub async fn serve_connection(shard: Rc<Broker>, stream: TcpStream) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let client_host: Rc<str> = stream.peer_addr().map(|a| format!("/{}", a.ip())).unwrap_or_default().into();
    let _ = stream.set_nodelay(true);
    // Every read wakes at least this often, so the stall and idle checks run.
    let wake = shard.config.request_read_timeout.min(shard.config.connections_max_idle);
    let _ = stream.set_read_timeout(Some(wake));
    // A client that stops reading its responses would hold their memory (and read budget)
    // for ever: a response that cannot be written for this long closes the connection.
    let _ = stream.set_write_timeout(Some(shard.config.request_read_timeout));
    // The same bound for file ranges, which the splice ring writes to the (blocking) socket
    // from a kernel worker: a send that makes no progress for this long fails.
    set_send_timeout(stream.as_raw_fd(), shard.config.request_read_timeout);
    // Responses are written with vectored sends on the socket itself (`send.rs`); `writer`
    // owns it until the connection ends, and waits for room when the socket has none.
    let fd = stream.as_raw_fd();
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let (queue_tx, queue_rx) = glommio::channels::local_channel::new_bounded(IN_FLIGHT_PER_CONNECTION_MAX);
    let connection_budget = Rc::new(Semaphore::new(shard.config.request_bytes_per_connection_max() as u64));
    let activity = Rc::new(Activity { pending: Cell::new(0), last: Cell::new(Instant::now()) });
    let reading = {
        let (shard, peer, activity) = (shard.clone(), peer.clone(), activity.clone());
        glommio::spawn_local(async move {
            loop {
                if shard.is_shutting_down() {
                    break;
                }
                let frame = match read_frame(&shard, &mut reader, &connection_budget, &activity).await {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(closing) => {
                        match &closing {
                            Closing::ReadTimeout => shard.metrics.connection_closed(true),
                            Closing::Idle => shard.metrics.connection_closed(false),
                            Closing::Other(_) => {}
                        }
                        if shard.log_limits.connections.allow() {
                            tracing::info!(%peer, reason = %closing, "closing connection");
                        }
                        break;
                    }
                };
                activity.pending.set(activity.pending.get() + 1);
                activity.last.set(Instant::now());
                let api_key = frame.bytes.get(..2).map_or(-1, |k| i16::from_be_bytes([k[0], k[1]]));
                let guard = InFlight::new(&shard, api_key);
                let worker = shard.clone();
                let client_host = client_host.clone();
                let task = glommio::spawn_local(async move {
                    let _guard = guard;
                    let Frame { bytes, _connection_permit, _shard_permit } = frame;
                    let started = Instant::now();
                    let outcome = handle_request(&worker, bytes, &client_host).await;
                    let elapsed = started.elapsed();
                    worker.metrics.request(api_key, elapsed, matches!(outcome, Outcome::Close(_)));
                    if elapsed > SLOW_REQUEST {
                        tracing::debug!(api_key, elapsed_us = elapsed.as_micros() as u64, "slow request");
                    }
                    outcome
                });
                // Waits while too many requests of this connection are in progress: backpressure.
                if queue_tx.send(task).await.is_err() {
                    break;
                }
            }
        })
    };
    // Responses go out in request order, whatever order the handlers finish in.
    while let Some(task) = queue_rx.recv().await {
        let outcome = task.await;
        activity.pending.set(activity.pending.get() - 1);
        activity.last.set(Instant::now());
        match outcome {
            Outcome::Respond(chunks) => {
                match super::send::write_response(fd, &mut writer, &chunks, shard.splicer.as_deref()).await {
                    Ok(written) => shard.metrics.response_written(written.sends),
                    Err(e) => {
                        if shard.log_limits.connections.allow() {
                            tracing::info!(%peer, error = %e, "closing connection: a response could not be written");
                        }
                        break;
                    }
                }
            }
            Outcome::Silent => {}
            Outcome::Close(reason) => {
                if shard.log_limits.connections.allow() {
                    tracing::info!(%peer, %reason, "closing connection");
                }
                break;
            }
        }
    }
    drop(reading.cancel());
    let _ = writer.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(total: Option<usize>, per_ip: Option<usize>, overrides: &[(&str, usize)]) -> ConnectionCaps {
        ConnectionCaps {
            total,
            per_ip,
            per_ip_overrides: overrides.iter().map(|(ip, n)| (ip.parse().unwrap(), *n)).collect(),
        }
    }

    #[test]
    fn the_newest_connection_over_a_cap_is_refused_and_places_come_back() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let counts = ConnectionCounts::new(caps(Some(3), Some(2), &[("10.0.0.2", 1)]));
        let a1 = counts.admit(a).unwrap();
        let _a2 = counts.admit(a).unwrap();
        assert_eq!(counts.admit(a).unwrap_err(), Refusal::MaxConnectionsPerIp);
        let _b1 = counts.admit(b).unwrap();
        assert_eq!(counts.admit("10.0.0.3".parse().unwrap()).unwrap_err(), Refusal::MaxConnections);
        drop(a1);
        let _a3 = counts.admit(a).unwrap();
        assert_eq!(counts.admit(b).unwrap_err(), Refusal::MaxConnections);
        assert_eq!(counts.total.load(Ordering::Acquire), 3);
    }

    #[test]
    fn without_per_ip_caps_nothing_is_counted_per_address() {
        let counts = ConnectionCounts::new(caps(None, None, &[]));
        let held: Vec<_> = (0..100).map(|_| counts.admit("10.0.0.1".parse().unwrap()).unwrap()).collect();
        assert!(counts.per_ip.lock().unwrap().is_empty());
        drop(held);
        assert_eq!(counts.total.load(Ordering::Acquire), 0);
    }
}
