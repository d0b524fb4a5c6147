//! The quorum's RPC over TCP: request/response frames on the controller listener (and, later,
//! the brokers' registrations and heartbeats), and the [`Transport`] that carries a
//! controller's calls to its peers. glommio sockets: the simulation has its own transport.
//!
//! A frame is a big-endian u32 size, then a u32 correlation id and the payload (the size
//! counts both). The server answers each request with a frame carrying the request's
//! correlation id, in the order its handlers finish; a client matches answers to its calls by
//! that id, so one connection carries many calls at once. What the payload means is the
//! caller's (the quorum's own bounded encoding); this layer only bounds and moves frames.
//!
//! Bounds: a frame above `PEER_FRAME_BYTES_MAX` closes the connection before anything is
//! allocated; frames being read or handled are charged to one budget for the listener
//! (`PEER_BYTES_BUDGET`), so a peer that floods it waits (its socket is not read) instead of
//! growing memory; a connection has at most `PEER_IN_FLIGHT_MAX` requests in progress; a frame
//! that stalls part way, or a connection idle past the idle timeout, is closed.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::{Semaphore, StaticPermit};

use super::limits::{PEER_BYTES_BUDGET, PEER_CONNECTIONS_MAX, PEER_FRAME_BYTES_MAX, PEER_IN_FLIGHT_MAX};
use super::network::{Transport, TransportError};
use super::types::ControllerNode;
use super::QuorumRaft;

/// Bytes of a frame's header after the size: the correlation id.
const CORRELATION_BYTES: usize = 4;

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// No connection could be made, or it broke before the answer: the peer may be down.
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("peer {addr} did not answer within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    #[error("request of {size} bytes to {addr} exceeds the {max}-byte frame limit")]
    TooLarge { addr: String, size: usize, max: usize },
}

/// What a listener does with a request's payload: the answer's payload, or `None` to close the
/// connection (a request it cannot make sense of).
pub type Handler = Rc<dyn Fn(Bytes) -> Pin<Box<dyn Future<Output = Option<Bytes>>>>>;

/// Reads exactly `buf.len()` bytes; `Ok(false)` if the stream ended before the first byte.
/// Gives up when no byte arrives for `stall` (the socket's read timeout wakes it).
async fn read_full(
    stream: &mut ReadHalf<TcpStream>,
    buf: &mut [u8],
    stall: Duration,
    idle: Option<Duration>,
) -> Result<bool, String> {
    let mut got = 0;
    let mut progress = Instant::now();
    while got < buf.len() {
        match stream.read(&mut buf[got..]).await {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err("the peer closed the connection mid-frame".into()),
            Ok(n) => {
                got += n;
                progress = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                let limit = if got == 0 { idle } else { Some(stall) };
                if limit.is_some_and(|l| progress.elapsed() >= l) {
                    return Err(if got == 0 { "idle".into() } else { "stalled mid-frame".into() });
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(true)
}

/// Reads one frame's size and correlation id, checks the size, charges `budget`, then the payload.
async fn read_frame(
    stream: &mut ReadHalf<TcpStream>,
    budget: &Rc<Semaphore>,
    stall: Duration,
    idle: Option<Duration>,
) -> Result<Option<(u32, Bytes, StaticPermit)>, String> {
    let mut head = [0u8; 4 + CORRELATION_BYTES];
    if !read_full(stream, &mut head, stall, idle).await? {
        return Ok(None);
    }
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let correlation = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if !(CORRELATION_BYTES..=PEER_FRAME_BYTES_MAX).contains(&size) {
        return Err(format!("frame size {size} is outside {CORRELATION_BYTES}..={PEER_FRAME_BYTES_MAX} bytes"));
    }
    let payload_len = size - CORRELATION_BYTES;
    let permit = budget.acquire_static_permit(payload_len as u64).await.map_err(|e| e.to_string())?;
    let mut payload = BytesMut::zeroed(payload_len);
    if !read_full(stream, &mut payload, stall, None).await? {
        return Err("the peer closed the connection mid-frame".into());
    }
    Ok(Some((correlation, payload.freeze(), permit)))
}

async fn write_frame(stream: &mut WriteHalf<TcpStream>, correlation: u32, payload: &[u8]) -> std::io::Result<()> {
    let size = (payload.len() + CORRELATION_BYTES) as u32;
    let mut head = [0u8; 4 + CORRELATION_BYTES];
    head[..4].copy_from_slice(&size.to_be_bytes());
    head[4..].copy_from_slice(&correlation.to_be_bytes());
    stream.write_all(&head).await?;
    stream.write_all(payload).await?;
    stream.flush().await
}

/// Timeouts of a listener's connections.
#[derive(Debug, Clone, Copy)]
pub struct ListenerTimeouts {
    /// A frame that stops arriving part way for this long closes its connection.
    pub stall: Duration,
    /// A connection with nothing in progress that sends nothing for this long is closed.
    pub idle: Duration,
}

/// Serves requests on `listener` with `handler` until the task is dropped, which closes every
/// connection it accepted too (as a process that stops would).
pub async fn serve(listener: TcpListener, handler: Handler, timeouts: ListenerTimeouts) {
    let budget = Rc::new(Semaphore::new(PEER_BYTES_BUDGET as u64));
    // Each connection's task, held here so that dropping this future cancels them all; a
    // finished one leaves its id in `done` and is let go at the next accept.
    let mut connections: HashMap<u64, glommio::Task<()>> = HashMap::new();
    let done: Rc<RefCell<Vec<u64>>> = Rc::new(RefCell::new(Vec::new()));
    let mut next_id = 0u64;
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "controller listener: accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        for id in done.borrow_mut().drain(..) {
            connections.remove(&id);
        }
        if connections.len() >= PEER_CONNECTIONS_MAX {
            // A controller's peers are the other controllers and the brokers: far fewer.
            tracing::warn!(
                max = PEER_CONNECTIONS_MAX,
                "controller listener: refusing a connection, the connection cap is reached"
            );
            drop(stream);
            continue;
        }
        let (handler, budget, finished) = (handler.clone(), budget.clone(), done.clone());
        let id = next_id;
        next_id += 1;
        let task = glommio::spawn_local(async move {
            serve_connection(stream, handler, budget, timeouts).await;
            finished.borrow_mut().push(id);
        });
        connections.insert(id, task);
    }
}

async fn serve_connection(stream: TcpStream, handler: Handler, budget: Rc<Semaphore>, timeouts: ListenerTimeouts) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(timeouts.stall.min(timeouts.idle)));
    let _ = stream.set_write_timeout(Some(timeouts.stall));
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let (answers_tx, answers_rx) =
        glommio::channels::local_channel::new_bounded::<(u32, Option<Bytes>)>(PEER_IN_FLIGHT_MAX);
    let answers_tx = Rc::new(answers_tx);
    let in_flight = Rc::new(Semaphore::new(PEER_IN_FLIGHT_MAX as u64));
    let reading = glommio::spawn_local({
        let peer = peer.clone();
        async move {
            loop {
                let slot = match in_flight.acquire_static_permit(1).await {
                    Ok(p) => p,
                    Err(_) => break,
                };
                // Idle only counts while nothing is in progress.
                let idle = (in_flight.available() == PEER_IN_FLIGHT_MAX as u64 - 1).then_some(timeouts.idle);
                let (correlation, payload, charge) = match read_frame(&mut reader, &budget, timeouts.stall, idle).await
                {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(reason) => {
                        tracing::debug!(%peer, %reason, "controller listener: closing connection");
                        break;
                    }
                };
                let (handler, answers) = (handler.clone(), answers_tx.clone());
                glommio::spawn_local(async move {
                    let answer = handler(payload).await;
                    drop(charge);
                    let _ = answers.send((correlation, answer)).await;
                    drop(slot);
                })
                .detach();
            }
        }
    });
    while let Some((correlation, answer)) = answers_rx.recv().await {
        let Some(payload) = answer else { break };
        if write_frame(&mut writer, correlation, &payload).await.is_err() {
            break;
        }
    }
    drop(reading);
}

struct Connection {
    writer: RefCell<Option<WriteHalf<TcpStream>>>,
    write_lock: Semaphore,
    pending: RefCell<HashMap<u32, glommio::channels::local_channel::LocalSender<Bytes>>>,
    broken: Cell<bool>,
    _reader: RefCell<Option<glommio::Task<()>>>,
}

/// Calls to one peer over one connection, made when first needed and again after it breaks.
pub struct PeerClient {
    addr: String,
    connection: RefCell<Option<Rc<Connection>>>,
    connecting: Semaphore,
    next_correlation: Cell<u32>,
    connect_timeout: Duration,
}

impl PeerClient {
    pub fn new(addr: String, connect_timeout: Duration) -> PeerClient {
        PeerClient {
            addr,
            connection: RefCell::new(None),
            connecting: Semaphore::new(1),
            next_correlation: Cell::new(0),
            connect_timeout,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn unreachable(&self, reason: impl ToString) -> PeerError {
        PeerError::Unreachable { addr: self.addr.clone(), reason: reason.to_string() }
    }

    async fn connection(&self) -> Result<Rc<Connection>, PeerError> {
        let _one = self.connecting.acquire_permit(1).await.map_err(|e| self.unreachable(e))?;
        if let Some(c) = self.connection.borrow().as_ref().filter(|c| !c.broken.get()) {
            return Ok(c.clone());
        }
        let addr: SocketAddr = match self.addr.parse() {
            Ok(a) => a,
            Err(_) => resolve(&self.addr).await.map_err(|e| self.unreachable(e))?,
        };
        let stream = TcpStream::connect_timeout(addr, self.connect_timeout).await.map_err(|e| self.unreachable(e))?;
        let _ = stream.set_nodelay(true);
        let (mut reader, writer) = futures_lite::io::split(stream);
        let connection = Rc::new(Connection {
            writer: RefCell::new(Some(writer)),
            write_lock: Semaphore::new(1),
            pending: RefCell::new(HashMap::new()),
            broken: Cell::new(false),
            _reader: RefCell::new(None),
        });
        let weak = Rc::downgrade(&connection);
        let reader_task = glommio::spawn_local(async move {
            // Answers carry no budget of their own: a client only reads answers to calls it
            // made, each bounded by the frame limit.
            let budget = Rc::new(Semaphore::new(PEER_FRAME_BYTES_MAX as u64));
            loop {
                let frame = read_frame(&mut reader, &budget, Duration::from_secs(3600), None).await;
                let Some(conn) = weak.upgrade() else { break };
                match frame {
                    Ok(Some((correlation, payload, _charge))) => {
                        let waiter = conn.pending.borrow_mut().remove(&correlation);
                        if let Some(w) = waiter {
                            let _ = w.try_send(payload);
                        }
                    }
                    _ => {
                        conn.broken.set(true);
                        // Waiters see their channel close: the call fails as unreachable.
                        conn.pending.borrow_mut().clear();
                        break;
                    }
                }
            }
        });
        *connection._reader.borrow_mut() = Some(reader_task);
        *self.connection.borrow_mut() = Some(connection.clone());
        Ok(connection)
    }

    /// Sends `payload` and waits at most `timeout` for the answer.
    pub async fn call(&self, payload: &[u8], timeout: Duration) -> Result<Bytes, PeerError> {
        if payload.len() + CORRELATION_BYTES > PEER_FRAME_BYTES_MAX {
            return Err(PeerError::TooLarge {
                addr: self.addr.clone(),
                size: payload.len(),
                max: PEER_FRAME_BYTES_MAX - CORRELATION_BYTES,
            });
        }
        let work = async {
            let connection = self.connection().await?;
            let correlation = self.next_correlation.get();
            self.next_correlation.set(correlation.wrapping_add(1));
            let (tx, rx) = glommio::channels::local_channel::new_bounded(1);
            connection.pending.borrow_mut().insert(correlation, tx);
            // A call cancelled (its caller timed out or went away) leaves no waiter behind, and
            // one cancelled part way through writing its frame breaks the connection: the next
            // frame would follow a partial one.
            let mut guard = CallGuard { connection: &connection, correlation, writing: false };
            let written = {
                let _lock = connection.write_lock.acquire_permit(1).await.map_err(|e| self.unreachable(e))?;
                guard.writing = true;
                let Some(mut writer) = connection.writer.borrow_mut().take() else {
                    connection.broken.set(true);
                    return Err(self.unreachable("broken"));
                };
                let result = write_frame(&mut writer, correlation, payload).await;
                *connection.writer.borrow_mut() = Some(writer);
                result
            };
            guard.writing = false;
            if let Err(e) = written {
                connection.broken.set(true);
                return Err(self.unreachable(e));
            }
            let answer = rx.recv().await;
            drop(guard);
            answer.ok_or_else(|| self.unreachable("the connection broke before the answer"))
        };
        let timed_out = PeerError::Timeout { addr: self.addr.clone(), timeout_ms: timeout.as_millis() as u64 };
        match glommio::timer::timeout(timeout, async { Ok(work.await) }).await {
            Ok(answer) => answer,
            Err(_) => {
                // A peer silent for a whole call (paused, or cut off without a reset) may never
                // answer on this connection again: the next call starts a new one.
                if let Some(c) = self.connection.borrow().as_ref() {
                    c.broken.set(true);
                }
                Err(timed_out)
            }
        }
    }
}

/// Resolves `host:port` on a thread of its own: a name lookup blocks, and the executor's
/// thread must never (it runs the quorum and the shard).
async fn resolve(addr: &str) -> Result<SocketAddr, String> {
    let (tx, rx) = flume::bounded(1);
    let name = addr.to_string();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let found = std::net::ToSocketAddrs::to_socket_addrs(&name)
                .map_err(|e| e.to_string())
                .and_then(|mut a| a.next().ok_or_else(|| "the name resolves to no address".to_string()));
            let _ = tx.send(found);
        })
        .map_err(|e| format!("cannot start a resolver thread: {e}"))?;
    rx.recv_async().await.map_err(|_| "the resolver thread stopped".to_string())?
}

/// Removes a call's waiter however the call ends; breaks the connection if it ends mid-write.
struct CallGuard<'a> {
    connection: &'a Connection,
    correlation: u32,
    writing: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.connection.pending.borrow_mut().remove(&self.correlation);
        if self.writing {
            self.connection.broken.set(true);
        }
    }
}

/// The quorum's calls to its peers over TCP: one [`PeerClient`] (one connection) per peer.
pub struct TcpTransport {
    clients: RefCell<HashMap<u64, Rc<PeerClient>>>,
    /// The addresses this node was given for voters (its `--controller-quorum-voters`): they
    /// win over the ones stored with the membership, which the node that formed the quorum
    /// wrote, as Kafka's static voter list is each node's own. Nodes behind a NAT or a proxy
    /// reach one voter at different addresses.
    given: HashMap<u64, String>,
    connect_timeout: Duration,
    /// An answer slower than this fails the call (openraft's own timeouts are shorter for
    /// everything but snapshots).
    call_timeout: Duration,
}

impl TcpTransport {
    /// `given`: each voter's address as this node was told it.
    pub fn new(connect_timeout: Duration, call_timeout: Duration, given: HashMap<u64, String>) -> TcpTransport {
        TcpTransport { clients: RefCell::new(HashMap::new()), given, connect_timeout, call_timeout }
    }

    fn client(&self, target: u64, node: &ControllerNode) -> Rc<PeerClient> {
        let address = self.given.get(&target).unwrap_or(&node.address);
        let mut clients = self.clients.borrow_mut();
        match clients.get(&target) {
            Some(c) if c.addr() == address => c.clone(),
            _ => {
                let c = Rc::new(PeerClient::new(address.clone(), self.connect_timeout));
                clients.insert(target, c.clone());
                c
            }
        }
    }
}

impl Transport for TcpTransport {
    fn send(
        &self,
        target: u64,
        node: &ControllerNode,
        request: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> {
        let client = self.client(target, node);
        let timeout = self.call_timeout;
        async move {
            match client.call(&request, timeout).await {
                Ok(answer) => Ok(answer.to_vec()),
                Err(e @ PeerError::Unreachable { .. }) => Err(TransportError::Unreachable(std::io::Error::other(e))),
                Err(e) => Err(TransportError::Broken(std::io::Error::other(e))),
            }
        }
    }
}

/// Serves the quorum's requests on `listener` for `raft` until the task is dropped.
pub async fn serve_quorum(listener: TcpListener, raft: QuorumRaft, timeouts: ListenerTimeouts) {
    let handler: Handler = Rc::new(move |frame: Bytes| {
        let raft = raft.clone();
        Box::pin(async move { Some(Bytes::from(super::network::serve(&raft, None, &frame).await)) })
    });
    serve(listener, handler, timeouts).await
}

/// Serves a controller's listener until the task is dropped: the quorum's requests to its
/// Raft, the brokers' requests to its [`ControllerService`](super::ControllerService).
pub async fn serve_controller(
    listener: TcpListener,
    service: Rc<super::ControllerService>,
    timeouts: ListenerTimeouts,
) {
    let handler: Handler = Rc::new(move |frame: Bytes| {
        let service = service.clone();
        Box::pin(async move {
            let answer = match super::broker_wire::is_broker_frame(&frame) {
                true => service.handle(&frame).await,
                false => service.serve_raft(&frame).await,
            };
            Some(Bytes::from(answer))
        })
    });
    serve(listener, handler, timeouts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T: Send + 'static>(f: impl FnOnce() -> Pin<Box<dyn Future<Output = T>>> + Send + 'static) -> T {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(f)
            .expect("executor")
            .join()
            .expect("join")
    }

    fn echo() -> Handler {
        Rc::new(|payload: Bytes| {
            Box::pin(async move {
                match payload.first() {
                    Some(b'!') => None,
                    Some(b'z') => {
                        glommio::timer::sleep(Duration::from_millis(300)).await;
                        Some(payload)
                    }
                    _ => Some(payload),
                }
            })
        })
    }

    const TIMEOUTS: ListenerTimeouts =
        ListenerTimeouts { stall: Duration::from_millis(500), idle: Duration::from_secs(10) };

    #[test]
    fn calls_are_answered_by_correlation_whatever_order_handlers_finish() {
        run(|| {
            Box::pin(async {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("addr").to_string();
                let _server = glommio::spawn_local(serve(listener, echo(), TIMEOUTS));
                let client = Rc::new(PeerClient::new(addr, Duration::from_secs(1)));
                let slow = {
                    let c = client.clone();
                    glommio::spawn_local(async move { c.call(b"zzz", Duration::from_secs(5)).await })
                };
                for i in 0..50u32 {
                    let msg = format!("call {i}");
                    let answer = client.call(msg.as_bytes(), Duration::from_secs(5)).await.expect("answered");
                    assert_eq!(&answer[..], msg.as_bytes());
                }
                assert_eq!(&slow.await.expect("slow answered")[..], b"zzz");
                // Too slow for its timeout: a timeout, and the connection goes on serving.
                let e = client.call(b"zz", Duration::from_millis(50)).await.unwrap_err();
                assert!(matches!(e, PeerError::Timeout { .. }), "{e}");
                assert_eq!(&client.call(b"after", Duration::from_secs(5)).await.expect("ok")[..], b"after");
            })
        });
    }

    #[test]
    fn a_closed_or_missing_peer_is_unreachable_and_a_later_call_reconnects() {
        run(|| {
            Box::pin(async {
                let nobody = TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = nobody.local_addr().expect("addr").to_string();
                drop(nobody);
                let client = PeerClient::new(addr, Duration::from_millis(500));
                let e = client.call(b"x", Duration::from_secs(2)).await.unwrap_err();
                assert!(matches!(e, PeerError::Unreachable { .. }), "{e}");

                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("addr").to_string();
                let _server = glommio::spawn_local(serve(listener, echo(), TIMEOUTS));
                let client = PeerClient::new(addr, Duration::from_millis(500));
                // The handler refuses: the server closes the connection; the call fails.
                let e = client.call(b"!", Duration::from_secs(2)).await.unwrap_err();
                assert!(matches!(e, PeerError::Unreachable { .. }), "{e}");
                assert_eq!(&client.call(b"again", Duration::from_secs(2)).await.expect("reconnected")[..], b"again");
            })
        });
    }

    #[test]
    fn hostile_frames_close_the_connection_and_the_listener_goes_on() {
        run(|| {
            Box::pin(async {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("addr");
                let _server = glommio::spawn_local(serve(listener, echo(), TIMEOUTS));
                for head in [
                    [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1], // 4 GiB: refused before allocating
                    [0, 0, 0, 2, 0, 0, 0, 1],             // shorter than its correlation id
                ] {
                    let mut s = TcpStream::connect(addr).await.expect("connect");
                    s.write_all(&head).await.expect("write");
                    let mut buf = [0u8; 8];
                    assert_eq!(s.read(&mut buf).await.expect("closed, not reset"), 0);
                }
                // A frame that stops part way is closed after the stall timeout.
                let mut s = TcpStream::connect(addr).await.expect("connect");
                s.write_all(&[0, 0, 0, 100, 0, 0, 0, 1, 1, 2]).await.expect("write");
                let started = Instant::now();
                let mut buf = [0u8; 8];
                assert_eq!(s.read(&mut buf).await.expect("closed"), 0);
                assert!(started.elapsed() >= Duration::from_millis(400));
                let client = PeerClient::new(addr.to_string(), Duration::from_millis(500));
                assert_eq!(&client.call(b"still up", Duration::from_secs(2)).await.expect("ok")[..], b"still up");
            })
        });
    }
}
