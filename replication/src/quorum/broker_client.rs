//! A broker's calls to the controllers: to the active one (proposals, heartbeats), following
//! `NotLeader` hints and trying each voter in turn when none is known; and to any one
//! (fetching the committed metadata), preferring the active one.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use super::broker_wire::{self, BrokerRequest, BrokerResponse, LeaderHint};
use super::tcp::PeerClient;

/// Where a broker reaches the controllers: the voters it was given, and any controller a hint
/// named since (a voter added after this node started: KIP-853).
pub struct BrokerClient {
    voters: RefCell<Vec<(u64, Rc<PeerClient>)>>,
    connect_timeout: Duration,
    /// Index into `voters` of the controller believed active.
    leader: Cell<Option<usize>>,
    /// The voter tried next when no active controller is known.
    next: Cell<usize>,
    call_timeout: Duration,
}

impl BrokerClient {
    /// `voters`: each controller's node id and `host:port`.
    pub fn new(voters: Vec<(u64, String)>, connect_timeout: Duration, call_timeout: Duration) -> BrokerClient {
        let voters =
            voters.into_iter().map(|(id, addr)| (id, Rc::new(PeerClient::new(addr, connect_timeout)))).collect();
        BrokerClient {
            voters: RefCell::new(voters),
            connect_timeout,
            leader: Cell::new(None),
            next: Cell::new(0),
            call_timeout,
        }
    }

    /// The controller believed active, if any.
    pub fn leader(&self) -> Option<u64> {
        self.leader.get().map(|i| self.voters.borrow()[i].0)
    }

    /// Follows a hint: the controller it names is believed active; one this client has never
    /// heard of is reached at the hint's address from now on.
    fn note_leader(&self, hint: Option<&LeaderHint>) {
        let Some(hint) = hint else {
            self.leader.set(None);
            return;
        };
        let mut voters = self.voters.borrow_mut();
        let i = match voters.iter().position(|(v, _)| *v == hint.id) {
            Some(i) => i,
            None if hint.address.is_empty() => {
                self.leader.set(None);
                return;
            }
            None => {
                voters.push((hint.id, Rc::new(PeerClient::new(hint.address.clone(), self.connect_timeout))));
                voters.len() - 1
            }
        };
        self.leader.set(Some(i));
    }

    fn target(&self) -> usize {
        match self.leader.get() {
            Some(i) => i,
            None => {
                let i = self.next.get() % self.voters.borrow().len().max(1);
                self.next.set(i + 1);
                i
            }
        }
    }

    /// Sends `request` to the active controller, following hints, at most `attempts` calls.
    /// A controller that cannot be reached, or answers `NotLeader` without a hint, sends the
    /// next call to the next voter; a controller's own answer (`Unavailable` included: no
    /// majority behind it) is returned as it is.
    pub async fn call_leader(&self, request: &BrokerRequest, attempts: usize) -> BrokerResponse {
        self.call_leader_within(request, attempts, self.call_timeout).await
    }

    /// `call_leader` with each call bounded by `timeout` instead of the client's own: a
    /// heartbeat must give up on a stopped controller well within the broker's session, so
    /// that the next attempt reaches the one that took over.
    pub async fn call_leader_within(
        &self,
        request: &BrokerRequest,
        attempts: usize,
        timeout: Duration,
    ) -> BrokerResponse {
        let frame = broker_wire::encode_request(request);
        let mut last = BrokerResponse::Unavailable("no controller is configured".into());
        for _ in 0..attempts.max(1) {
            if self.voters.borrow().is_empty() {
                break;
            }
            let i = self.target();
            match self.send(i, &frame, timeout).await {
                Ok(BrokerResponse::NotLeader(hint)) => {
                    let asked = self.voters.borrow()[i].0;
                    self.note_leader(hint.as_ref().filter(|h| h.id != asked));
                    last = BrokerResponse::Unavailable(format!(
                        "controller {asked} is not the active controller, and no active controller is known"
                    ));
                    if self.leader.get().is_none() {
                        ringtail_log::platform::sleep(Duration::from_millis(50)).await;
                    }
                }
                Ok(r) => {
                    self.leader.set(Some(i));
                    return r;
                }
                Err(reason) => {
                    self.unreachable(i);
                    last = BrokerResponse::Unavailable(reason);
                }
            }
        }
        last
    }

    /// Fetches from the controller believed active, or the next voter; one call, bounded by
    /// `timeout`.
    pub async fn call_any(&self, request: &BrokerRequest, timeout: Duration) -> BrokerResponse {
        if self.voters.borrow().is_empty() {
            return BrokerResponse::Unavailable("no controller is configured".into());
        }
        let i = self.target();
        match self.send(i, &broker_wire::encode_request(request), timeout).await {
            Ok(response) => {
                match &response {
                    BrokerResponse::Fetched { leader, .. } => self.note_leader(leader.as_ref()),
                    _ => self.leader.set(None),
                }
                response
            }
            Err(reason) => {
                self.unreachable(i);
                BrokerResponse::Unavailable(reason)
            }
        }
    }

    /// Voter `i` did not answer (down, stopped, or cut off): no active controller is known,
    /// and the next call goes to the voter after it, never straight back to it.
    fn unreachable(&self, i: usize) {
        self.leader.set(None);
        self.next.set(i + 1);
    }

    /// One call to voter `i`: its answer, or why there was none.
    async fn send(&self, i: usize, frame: &[u8], timeout: Duration) -> Result<BrokerResponse, String> {
        let (id, client) = self.voters.borrow()[i].clone();
        match client.call(frame, timeout).await {
            Ok(answer) => broker_wire::decode_response(&answer)
                .map_err(|e| format!("controller {id} answered a damaged frame: {e}")),
            Err(e) => Err(format!("controller {id}: {e}")),
        }
    }
}
