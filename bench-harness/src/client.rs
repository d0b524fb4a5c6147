//! A lean Kafka client connection for one core: requests pipelined on one TCP stream
//! (glommio, io_uring), responses matched in order, versions negotiated with ApiVersions.
//! The wire codec is the client half of `ringtail-net`; record batches are built by `batch.rs`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use ringtail_net::client::api_versions::ApiVersionsRequest;
use ringtail_net::client::create_topics::{CreatableTopic, CreateTopicsRequest};
use ringtail_net::client::list_offsets::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
use ringtail_net::client::metadata::{MetadataRequest, MetadataRequestTopic};
use ringtail_net::client::{self, ClientApi, ClientRequest};
use ringtail_net::error_code::TOPIC_ALREADY_EXISTS;

/// Largest response read: a fetch's `max_bytes` plus headroom.
const RESPONSE_BYTES_MAX: usize = 256 << 20;

type Reply = flume::Sender<Result<Bytes, String>>;

/// One connection to one broker.
pub struct Connection {
    address: String,
    writer: RefCell<Option<futures_lite::io::WriteHalf<TcpStream>>>,
    write_lock: glommio::sync::Semaphore,
    /// Requests sent and not yet answered, in order: correlation id and where the answer goes.
    pending: RefCell<VecDeque<(i32, Reply)>>,
    next_correlation_id: Cell<i32>,
    /// The broker's (min, max) version per API key.
    versions: RefCell<HashMap<i16, (i16, i16)>>,
    failed: RefCell<Option<String>>,
    client_id: String,
    /// The broker predates ApiVersions (Kafka < 0.10): Produce and Fetch v1 with magic 0
    /// message sets, Metadata v0 (`legacy.rs`).
    legacy: Cell<bool>,
}

impl Connection {
    /// Connects and negotiates versions. A broker that closes the connection on ApiVersions
    /// is taken for one older than Kafka 0.10 and spoken to in its protocol.
    pub async fn connect(address: &str, client_id: &str) -> Result<Rc<Connection>> {
        static LEGACY: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let known_legacy = LEGACY.lock().map(|l| l.iter().any(|a| a == address)).unwrap_or(false);
        let mut conn = Self::open(address, client_id).await?;
        if known_legacy {
            conn.set_legacy();
            return Ok(conn);
        }
        // Two tries: a connection reset at once may come from the listener of a broker that
        // just stopped on this port. Kafka 0.9 neither answers ApiVersions nor always closes
        // the connection, hence the timeout; failing twice means a pre-0.10 broker.
        for attempt in 0..2 {
            let timeout = async {
                glommio::timer::sleep(std::time::Duration::from_secs(3)).await;
                Err(anyhow!("connection closed: no answer to ApiVersions within 3 s"))
            };
            match futures_lite::future::or(conn.negotiate(), timeout).await {
                Ok(()) => return Ok(conn),
                Err(e) if format!("{e:#}").contains("connection closed") => {
                    conn.fail("replaced by a new connection".into());
                    if attempt == 0 {
                        glommio::timer::sleep(std::time::Duration::from_millis(200)).await;
                    }
                    conn = Self::open(address, client_id).await?;
                }
                Err(e) => return Err(e),
            }
        }
        conn.set_legacy();
        if let Ok(mut l) = LEGACY.lock() {
            l.push(address.to_string());
        }
        Ok(conn)
    }

    fn set_legacy(&self) {
        self.legacy.set(true);
        *self.versions.borrow_mut() = [(0, (0, 1)), (1, (0, 1)), (3, (0, 0))].into_iter().collect();
    }

    pub fn is_legacy(&self) -> bool {
        self.legacy.get()
    }

    /// The Produce version to use.
    pub fn produce_version(&self) -> Result<i16> {
        if self.is_legacy() {
            Ok(1)
        } else {
            self.version(ClientApi::Produce, 3, 9)
        }
    }

    /// The Fetch version to use.
    pub fn fetch_version(&self) -> Result<i16> {
        if self.is_legacy() {
            Ok(1)
        } else {
            self.version(ClientApi::Fetch, 4, 12)
        }
    }

    async fn open(address: &str, client_id: &str) -> Result<Rc<Connection>> {
        let stream = TcpStream::connect(address).await.map_err(|e| anyhow!("cannot connect to {address}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| anyhow!("{address}: {e}"))?;
        let (mut reader, writer) = futures_lite::io::split(stream);
        let conn = Rc::new(Connection {
            address: address.to_string(),
            writer: RefCell::new(Some(writer)),
            write_lock: glommio::sync::Semaphore::new(1),
            pending: RefCell::new(VecDeque::new()),
            next_correlation_id: Cell::new(0),
            versions: RefCell::new(HashMap::new()),
            failed: RefCell::new(None),
            client_id: client_id.to_string(),
            legacy: Cell::new(false),
        });
        let weak = Rc::downgrade(&conn);
        glommio::spawn_local(async move {
            let error = loop {
                let mut size = [0u8; 4];
                if let Err(e) = reader.read_exact(&mut size).await {
                    break format!("connection closed: {e}");
                }
                let size = u32::from_be_bytes(size) as usize;
                if !(4..=RESPONSE_BYTES_MAX).contains(&size) {
                    break format!("response frame of {size} bytes");
                }
                let mut buf = vec![0u8; size];
                if let Err(e) = reader.read_exact(&mut buf).await {
                    break format!("connection closed: {e}");
                }
                let Some(conn) = weak.upgrade() else { return };
                let correlation_id = i32::from_be_bytes(buf[0..4].try_into().expect("4 bytes"));
                let Some((expected, reply)) = conn.pending.borrow_mut().pop_front() else {
                    break format!("a response (correlation id {correlation_id}) nobody asked for");
                };
                if expected != correlation_id {
                    break format!("correlation id {correlation_id}, expected {expected}");
                }
                let _ = reply.send(Ok(Bytes::from(buf)));
            };
            if let Some(conn) = weak.upgrade() {
                conn.fail(error);
            }
        })
        .detach();
        Ok(conn)
    }

    fn fail(&self, error: String) {
        let pending: Vec<_> = self.pending.borrow_mut().drain(..).collect();
        for (_, reply) in pending {
            let _ = reply.send(Err(error.clone()));
        }
        self.failed.borrow_mut().get_or_insert(error);
    }

    async fn negotiate(&self) -> Result<()> {
        let resp = self.call(0, &ApiVersionsRequest::default()).await?;
        if resp.error_code != 0 {
            bail!("{}: ApiVersions error {}", self.address, resp.error_code);
        }
        *self.versions.borrow_mut() =
            resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(())
    }

    /// The highest version of `api` both sides speak, at most `ours_max` and at least `ours_min`
    /// (within the versions the client half speaks).
    pub fn version(&self, api: ClientApi, ours_min: i16, ours_max: i16) -> Result<i16> {
        let (min, max) = *self
            .versions
            .borrow()
            .get(&api.key())
            .ok_or_else(|| anyhow!("{} does not support {api:?}", self.address))?;
        match api.negotiate(min, max, ours_max) {
            Some(v) if v >= ours_min => Ok(v),
            _ => bail!("{} speaks {api:?} v{min}-{max}; this client needs v{ours_min}-{ours_max}", self.address),
        }
    }

    /// Sends a request whose body is already encoded (header v1), at any version (the legacy
    /// protocol's too); returns the response body.
    pub async fn call_raw(&self, api: ClientApi, version: i16, body: &[u8], expect_response: bool) -> Result<Bytes> {
        let correlation_id = self.next_correlation_id();
        let frame = client::request_frame_with(api.key(), version, correlation_id, Some(&self.client_id), false, |w| {
            w.buf.extend_from_slice(body)
        });
        if !expect_response {
            return self.write_unanswered(frame).await.map(|()| Bytes::new());
        }
        let mut body = self.exchange(correlation_id, frame).await?;
        let _ = body.split_to(4); // correlation id (response header v0)
        Ok(body)
    }

    fn next_correlation_id(&self) -> i32 {
        let correlation_id = self.next_correlation_id.get().wrapping_add(1);
        self.next_correlation_id.set(correlation_id);
        correlation_id
    }

    /// A request frame: size, header, body.
    fn frame<Q: ClientRequest>(&self, version: i16, request: &Q) -> (i32, Bytes) {
        let correlation_id = self.next_correlation_id();
        (correlation_id, client::request_frame(request, version, correlation_id, Some(&self.client_id)))
    }

    /// Writes a frame that gets no response (not registered as pending).
    async fn write_unanswered(&self, frame: Bytes) -> Result<()> {
        let _permit = self.write_lock.acquire_permit(1).await.map_err(|_| anyhow!("connection closed"))?;
        let mut writer = self.writer.borrow_mut().take().ok_or_else(|| anyhow!("writer busy"))?;
        let result = writer.write_all(&frame).await;
        *self.writer.borrow_mut() = Some(writer);
        result.with_context(|| format!("sending to {}", self.address))
    }

    /// Writes a request frame and waits for its response (header included).
    async fn exchange(&self, correlation_id: i32, frame: Bytes) -> Result<Bytes> {
        let (tx, rx) = flume::bounded(1);
        {
            let _permit = self.write_lock.acquire_permit(1).await.map_err(|_| anyhow!("connection closed"))?;
            if let Some(e) = self.failed.borrow().as_ref() {
                bail!("{}: {e}", self.address);
            }
            self.pending.borrow_mut().push_back((correlation_id, tx));
            let mut writer = self.writer.borrow_mut().take().ok_or_else(|| anyhow!("writer busy"))?;
            let result = writer.write_all(&frame).await;
            *self.writer.borrow_mut() = Some(writer);
            result.with_context(|| format!("sending to {}", self.address))?;
        }
        rx.recv_async()
            .await
            .map_err(|_| anyhow!("{}: connection dropped", self.address))?
            .map_err(|e| anyhow!("{}: {e}", self.address))
    }

    /// Sends a request and decodes its response.
    pub async fn call<Q: ClientRequest>(&self, version: i16, request: &Q) -> Result<Q::Response> {
        let (correlation_id, frame) = self.frame(version, request);
        let frame = self.exchange(correlation_id, frame).await?;
        let (_, response) = client::decode_response::<Q>(frame, version)
            .with_context(|| format!("{}: decoding the {:?} v{version} response", self.address, Q::API))?;
        Ok(response)
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_only<Q: ClientRequest>(&self, version: i16, request: &Q) -> Result<()> {
        let (_, frame) = self.frame(version, request);
        self.write_unanswered(frame).await
    }
}

/// Creates the topics (ignoring TOPIC_ALREADY_EXISTS) and waits until Metadata shows a leader
/// for every partition.
pub async fn create_topics(conn: &Connection, topics: &[String], partitions: u32) -> Result<()> {
    if conn.is_legacy() {
        // No CreateTopics before Kafka 0.10.1: Metadata creates them with the broker's
        // `num.partitions` (auto.create.topics.enable=true).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let ready = partition_leaders(conn, topics).await?;
            if ready.len() == topics.len() && ready.iter().all(|(_, n)| *n > 0) {
                if let Some((t, n)) = ready.iter().find(|(_, n)| *n != partitions as usize) {
                    bail!(
                        "this broker predates CreateTopics and auto-created {t} with {n} partitions; \
                         set num.partitions={partitions} in its configuration"
                    );
                }
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!("topics were not auto-created within 60 s (is auto.create.topics.enable on?): {ready:?}");
            }
            glommio::timer::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let version = conn.version(ClientApi::CreateTopics, 0, 5)?;
    let request = CreateTopicsRequest {
        topics: topics
            .iter()
            .map(|t| CreatableTopic {
                name: t.clone(),
                num_partitions: partitions as i32,
                replication_factor: 1,
                ..CreatableTopic::default()
            })
            .collect(),
        timeout_ms: 30_000,
        validate_only: false,
    };
    let resp = conn.call(version, &request).await?;
    for t in &resp.topics {
        if t.error_code != 0 && t.error_code != TOPIC_ALREADY_EXISTS {
            bail!(
                "creating topic {}: error {} {}",
                t.name,
                t.error_code,
                t.error_message.as_deref().unwrap_or_default()
            );
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let ready = partition_leaders(conn, topics).await?;
        if ready.iter().all(|(_, n)| *n == partitions as usize) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("topics did not get leaders for every partition within 60 s: {ready:?}");
        }
        glommio::timer::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Partitions with a leader, per topic.
async fn partition_leaders(conn: &Connection, topics: &[String]) -> Result<Vec<(String, usize)>> {
    let version = conn.version(ClientApi::Metadata, 0, 9)?;
    let request = MetadataRequest {
        topics: Some(
            topics.iter().map(|t| MetadataRequestTopic { topic_id: [0; 16], name: Some(t.clone()) }).collect(),
        ),
        allow_auto_topic_creation: true,
        include_cluster_authorized_operations: false,
        include_topic_authorized_operations: false,
    };
    let resp = conn.call(version, &request).await?;
    Ok(resp
        .topics
        .into_iter()
        .map(|t| {
            let leaders = t.partitions.iter().filter(|p| p.error_code == 0 && p.leader_id >= 0).count();
            (t.name.unwrap_or_default(), leaders)
        })
        .collect())
}

/// The log end offsets of partitions.
pub async fn latest_offsets(conn: &Connection, partitions: &[(String, i32)]) -> Result<HashMap<(String, i32), i64>> {
    let version = conn.version(ClientApi::ListOffsets, 1, 6)?;
    let mut by_topic: HashMap<&str, Vec<i32>> = HashMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let request = ListOffsetsRequest {
        replica_id: -1,
        isolation_level: 0,
        topics: by_topic
            .iter()
            .map(|(t, ps)| ListOffsetsTopic {
                name: t.to_string(),
                partitions: ps
                    .iter()
                    .map(|p| ListOffsetsPartition { partition_index: *p, current_leader_epoch: -1, timestamp: -1 })
                    .collect(),
            })
            .collect(),
        timeout_ms: 0,
    };
    let resp = conn.call(version, &request).await?;
    let mut out = HashMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!("ListOffsets {}[{}]: error {}", t.name, p.partition_index, p.error_code);
            }
            out.insert((t.name.clone(), p.partition_index), p.offset);
        }
    }
    Ok(out)
}
