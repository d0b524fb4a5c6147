//! A lean Kafka client connection for one core: requests pipelined on one TCP stream
//! (glommio, io_uring), responses matched in order, versions negotiated with ApiVersions.
//! The wire codec is the `kafka-protocol` crate's; record batches are built by `batch.rs`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::{self as kp, ApiKey};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

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
    client_id: StrBytes,
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
            self.version(ApiKey::Produce, 3, 9)
        }
    }

    /// The Fetch version to use.
    pub fn fetch_version(&self) -> Result<i16> {
        if self.is_legacy() {
            Ok(1)
        } else {
            self.version(ApiKey::Fetch, 4, 12)
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
            client_id: StrBytes::from_string(client_id.to_string()),
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
        let resp: kp::ApiVersionsResponse =
            self.call(ApiKey::ApiVersions, 0, &kp::ApiVersionsRequest::default()).await?;
        if resp.error_code != 0 {
            bail!("{}: ApiVersions error {}", self.address, resp.error_code);
        }
        *self.versions.borrow_mut() =
            resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(())
    }

    /// The highest version of `key` both sides speak, at most `ours_max` and at least `ours_min`.
    pub fn version(&self, key: ApiKey, ours_min: i16, ours_max: i16) -> Result<i16> {
        let (min, max) = *self
            .versions
            .borrow()
            .get(&(key as i16))
            .ok_or_else(|| anyhow!("{} does not support {key:?}", self.address))?;
        let v = max.min(ours_max);
        if v < ours_min.max(min) {
            bail!("{} speaks {key:?} v{min}-{max}; this client needs v{ours_min}-{ours_max}", self.address);
        }
        Ok(v)
    }

    /// Sends a request whose body is already encoded (header v1); returns the response body.
    pub async fn call_raw(&self, key: ApiKey, version: i16, body: &[u8], expect_response: bool) -> Result<Bytes> {
        let (correlation_id, frame) = self.frame_with(key, version, 1, |buf| {
            buf.put_slice(body);
            Ok(())
        })?;
        if !expect_response {
            return self.write_unanswered(frame).await.map(|()| Bytes::new());
        }
        let mut body = self.exchange(correlation_id, frame).await?;
        let _ = body.split_to(4); // correlation id (response header v0)
        Ok(body)
    }

    fn frame<Q: Encodable>(&self, key: ApiKey, version: i16, request: &Q) -> Result<(i32, Bytes)> {
        self.frame_with(key, version, key.request_header_version(version), |buf| request.encode(buf, version))
    }

    /// A request frame: size, header (in `header_version`), then what `body` writes.
    fn frame_with(
        &self,
        key: ApiKey,
        version: i16,
        header_version: i16,
        body: impl FnOnce(&mut BytesMut) -> Result<()>,
    ) -> Result<(i32, Bytes)> {
        let correlation_id = self.next_correlation_id.get().wrapping_add(1);
        self.next_correlation_id.set(correlation_id);
        let header = kp::RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_u32(0);
        header.encode(&mut buf, header_version)?;
        body(&mut buf)?;
        let size = (buf.len() - 4) as u32;
        buf[0..4].copy_from_slice(&size.to_be_bytes());
        Ok((correlation_id, buf.freeze()))
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
    pub async fn call<Q: Encodable, R: Decodable>(&self, key: ApiKey, version: i16, request: &Q) -> Result<R> {
        let (correlation_id, frame) = self.frame(key, version, request)?;
        let mut body = self.exchange(correlation_id, frame).await?;
        let _header = kp::ResponseHeader::decode(&mut body, key.response_header_version(version))?;
        R::decode(&mut body, version)
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_only<Q: Encodable>(&self, key: ApiKey, version: i16, request: &Q) -> Result<()> {
        let (_, frame) = self.frame(key, version, request)?;
        self.write_unanswered(frame).await
    }
}

pub fn topic_name(name: &str) -> kp::TopicName {
    kp::TopicName(StrBytes::from_string(name.to_string()))
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
    let version = conn.version(ApiKey::CreateTopics, 0, 5)?;
    let request = kp::CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(
        topics
            .iter()
            .map(|t| {
                kp::create_topics_request::CreatableTopic::default()
                    .with_name(topic_name(t))
                    .with_num_partitions(partitions as i32)
                    .with_replication_factor(1)
            })
            .collect(),
    );
    let resp: kp::CreateTopicsResponse = conn.call(ApiKey::CreateTopics, version, &request).await?;
    for t in &resp.topics {
        if t.error_code != 0 && t.error_code != 36 {
            bail!(
                "creating topic {}: error {} {}",
                t.name.0.as_str(),
                t.error_code,
                t.error_message.as_ref().map_or("", |m| m.as_str())
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
    let version = conn.version(ApiKey::Metadata, 0, 9)?;
    let request = kp::MetadataRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|t| kp::metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(t))))
            .collect(),
    ));
    let resp: kp::MetadataResponse = conn.call(ApiKey::Metadata, version, &request).await?;
    Ok(resp
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            (name, t.partitions.iter().filter(|p| p.error_code == 0 && p.leader_id.0 >= 0).count())
        })
        .collect())
}

/// The log end offsets of partitions.
pub async fn latest_offsets(conn: &Connection, partitions: &[(String, i32)]) -> Result<HashMap<(String, i32), i64>> {
    let version = conn.version(ApiKey::ListOffsets, 1, 6)?;
    let mut by_topic: HashMap<&str, Vec<i32>> = HashMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let request = kp::ListOffsetsRequest::default().with_replica_id(kp::BrokerId(-1)).with_topics(
        by_topic
            .iter()
            .map(|(t, ps)| {
                kp::list_offsets_request::ListOffsetsTopic::default().with_name(topic_name(t)).with_partitions(
                    ps.iter()
                        .map(|p| {
                            kp::list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_timestamp(-1)
                        })
                        .collect(),
                )
            })
            .collect(),
    );
    let resp: kp::ListOffsetsResponse = conn.call(ApiKey::ListOffsets, version, &request).await?;
    let mut out = HashMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!("ListOffsets {}[{}]: error {}", t.name.0.as_str(), p.partition_index, p.error_code);
            }
            out.insert((t.name.0.to_string(), p.partition_index), p.offset);
        }
    }
    Ok(out)
}
