//! The live event feed behind `GET /api/v1/events`: every engine event gets an id
//! (`<boot>-<seq>`) and the latest ones are kept, so a client that reconnects with
//! `Last-Event-ID` is sent what it missed instead of refetching everything; when the
//! gap is too old (or rampart restarted since) it is told to `resync`.
//!
//! Also the stream tickets: a browser's `EventSource` cannot send an
//! `Authorization` header, so it trades its bearer token for a short-lived,
//! single-use ticket (`POST /api/v1/events/ticket`) and opens the stream with it.
//! The long-lived token never appears in a URL.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rampart_core::{Clock, Timestamp};
use rampart_engine::{EngineEvent, EngineEventKind};
use tokio::sync::broadcast;

use crate::auth::Principal;

/// Events kept for resuming streams. At one event per second for each of 20
/// services this covers more than three minutes of disconnection.
pub const REPLAY_CAPACITY: usize = 4096;
/// How long a stream ticket may wait before it is used.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// Unused tickets kept at most; issuing past this drops the oldest.
pub const MAX_OUTSTANDING_TICKETS: usize = 1024;

/// One engine event as sent on the stream.
#[derive(Debug)]
pub struct StampedEvent {
    pub seq: u64,
    pub service: String,
    /// The SSE event name: `transition`, `analysis`, `traffic`, `version_stopped`.
    pub name: &'static str,
    /// The event as JSON.
    pub data: String,
}

/// Where a resuming client stands.
#[derive(Debug)]
pub enum Resume {
    /// Everything after its last event is still kept: these, then live ones.
    Replay(Vec<Arc<StampedEvent>>),
    /// It missed events that are no longer kept, or its id is from another run of
    /// rampart: it must reload its state from the REST API, and resume after `head`
    /// (the latest event when it subscribed) next time.
    Resync { head: String },
}

#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

struct Inner {
    /// Start time of this run (ms since the epoch): ids from an earlier run differ.
    boot: u64,
    clock: Arc<dyn Clock>,
    kept: Mutex<Kept>,
    sender: broadcast::Sender<Arc<StampedEvent>>,
    tickets: Mutex<HashMap<String, Ticket>>,
}

struct Kept {
    next_seq: u64,
    events: VecDeque<Arc<StampedEvent>>,
}

struct Ticket {
    principal: Principal,
    expires: Timestamp,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn event_name(event: &EngineEvent) -> &'static str {
    match event.kind {
        EngineEventKind::Transition { .. } => "transition",
        EngineEventKind::Analysis { .. } => "analysis",
        EngineEventKind::Traffic { .. } => "traffic",
        EngineEventKind::VersionStopped { .. } => "version_stopped",
        EngineEventKind::Scaling { .. } => "scaling",
        EngineEventKind::Incident { .. } => "incident",
        EngineEventKind::Hook { .. } => "hook",
    }
}

impl Live {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let (sender, _) = broadcast::channel(1024);
        Live {
            inner: Arc::new(Inner {
                boot: clock.now().as_millis(),
                clock,
                kept: Mutex::new(Kept {
                    next_seq: 1,
                    events: VecDeque::with_capacity(REPLAY_CAPACITY),
                }),
                sender,
                tickets: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Numbers and keeps every engine event until the engine's channel closes or
    /// rampart shuts down.
    pub fn spawn_relay(
        &self,
        mut events: broadcast::Receiver<EngineEvent>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let live = self.clone();
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    _ = shutdown.wait_for(|stopping| *stopping) => return,
                    received = events.recv() => received,
                };
                match received {
                    Ok(event) => live.publish(&event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        // The relay itself fell behind: ids skip the missed events, so
                        // every resuming client sees a gap and resyncs.
                        tracing::warn!(missed, "the live event relay fell behind");
                        lock(&live.inner.kept).next_seq += missed;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }

    /// Stamps and keeps one event, and sends it to every open stream.
    pub fn publish(&self, event: &EngineEvent) {
        let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
        let mut kept = lock(&self.inner.kept);
        let stamped = Arc::new(StampedEvent {
            seq: kept.next_seq,
            service: event.service.clone(),
            name: event_name(event),
            data,
        });
        kept.next_seq += 1;
        if kept.events.len() == REPLAY_CAPACITY {
            kept.events.pop_front();
        }
        kept.events.push_back(Arc::clone(&stamped));
        // Sent under the lock, so a stream that subscribes while resuming gets each
        // event exactly once: from the replay or from the channel.
        let _ = self.inner.sender.send(stamped);
    }

    /// The SSE id of an event of this run.
    pub fn id_of(&self, seq: u64) -> String {
        format!("{}-{seq}", self.inner.boot)
    }

    /// Subscribes to live events and says what a client whose last event was
    /// `last_event_id` missed (`None`: a fresh client, nothing to replay).
    pub fn subscribe(
        &self,
        last_event_id: Option<&str>,
    ) -> (Resume, broadcast::Receiver<Arc<StampedEvent>>) {
        let kept = lock(&self.inner.kept);
        let receiver = self.inner.sender.subscribe();
        let Some(last) = last_event_id else {
            return (Resume::Replay(Vec::new()), receiver);
        };
        let seq = last
            .trim()
            .split_once('-')
            .filter(|(boot, _)| boot.parse::<u64>().ok() == Some(self.inner.boot))
            .and_then(|(_, seq)| seq.parse::<u64>().ok());
        let resync = Resume::Resync {
            head: self.id_of(kept.next_seq - 1),
        };
        let Some(seq) = seq.filter(|seq| *seq < kept.next_seq) else {
            return (resync, receiver);
        };
        // Sequence numbers are consecutive except across a relay lag, so the first
        // kept one tells whether anything after `seq` was dropped.
        let oldest_needed = seq + 1;
        let complete = match kept.events.front() {
            Some(front) => front.seq <= oldest_needed,
            None => oldest_needed == kept.next_seq,
        };
        if !complete || self.has_gap_after(&kept, seq) {
            return (resync, receiver);
        }
        let missed = kept
            .events
            .iter()
            .filter(|e| e.seq > seq)
            .cloned()
            .collect();
        (Resume::Replay(missed), receiver)
    }

    fn has_gap_after(&self, kept: &Kept, seq: u64) -> bool {
        let mut expected = seq + 1;
        for event in kept.events.iter().filter(|e| e.seq > seq) {
            if event.seq != expected {
                return true;
            }
            expected += 1;
        }
        expected != kept.next_seq
    }

    /// A fresh single-use ticket standing for `principal` for [`TICKET_TTL`].
    pub fn issue_ticket(&self, principal: Principal) -> String {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let ticket = hex::encode(bytes);
        let now = self.inner.clock.now();
        let expires = Timestamp(now.as_millis() + TICKET_TTL.as_millis() as u64);
        let mut tickets = lock(&self.inner.tickets);
        tickets.retain(|_, t| t.expires > now);
        if tickets.len() >= MAX_OUTSTANDING_TICKETS
            && let Some(oldest) = tickets
                .iter()
                .min_by_key(|(_, t)| t.expires)
                .map(|(k, _)| k.clone())
        {
            tickets.remove(&oldest);
        }
        tickets.insert(ticket.clone(), Ticket { principal, expires });
        ticket
    }

    /// Who the ticket stands for, once: it is gone afterwards.
    pub fn redeem_ticket(&self, ticket: &str) -> Option<Principal> {
        let found = lock(&self.inner.tickets).remove(ticket)?;
        (found.expires > self.inner.clock.now()).then_some(found.principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::ManualClock;
    use rampart_store::Role;

    fn live() -> (Live, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Timestamp(1_000)));
        (Live::new(clock.clone()), clock)
    }

    fn event(service: &str, weight: f64) -> EngineEvent {
        EngineEvent {
            service: service.into(),
            deployment_id: None,
            kind: EngineEventKind::Traffic {
                canary_weight: weight,
            },
        }
    }

    fn principal() -> Principal {
        Principal {
            token_name: "ops".into(),
            role: Role::Viewer,
        }
    }

    fn replayed(resume: Resume) -> Vec<u64> {
        match resume {
            Resume::Replay(events) => events.iter().map(|e| e.seq).collect(),
            Resume::Resync { .. } => panic!("expected a replay"),
        }
    }

    #[test]
    fn a_resuming_client_gets_exactly_what_it_missed_then_live_events() {
        let (live, _) = live();
        for w in [10.0, 20.0, 30.0] {
            live.publish(&event("web", w));
        }
        let (resume, mut receiver) = live.subscribe(Some(&live.id_of(1)));
        assert_eq!(replayed(resume), [2, 3]);
        live.publish(&event("web", 40.0));
        let next = receiver.try_recv().expect("the live event");
        assert_eq!(next.seq, 4);
        assert_eq!(next.name, "traffic");
        assert!(
            next.data.contains("\"canary_weight\":40.0"),
            "{}",
            next.data
        );
        // Up to date: nothing to replay.
        assert_eq!(
            replayed(live.subscribe(Some(&live.id_of(4))).0),
            Vec::<u64>::new()
        );
        // A fresh client replays nothing.
        assert_eq!(replayed(live.subscribe(None).0), Vec::<u64>::new());
        // A resync's head (`<boot>-0` before any event) is a valid place to resume.
        let (empty, _) = self::live();
        let Resume::Resync { head } = empty.subscribe(Some("garbage")).0 else {
            panic!("expected a resync");
        };
        assert_eq!(head, empty.id_of(0));
        assert_eq!(replayed(empty.subscribe(Some(&head)).0), Vec::<u64>::new());
    }

    #[test]
    fn ids_from_another_run_too_old_or_garbled_ask_for_a_resync() {
        let (live, _) = live();
        for i in 0..(REPLAY_CAPACITY + 5) {
            live.publish(&event("web", i as f64));
        }
        for id in ["999-3", "1000-2", "1000-999999", "garbage", "1000-"] {
            match live.subscribe(Some(id)).0 {
                Resume::Resync { head } => {
                    assert_eq!(head, live.id_of(REPLAY_CAPACITY as u64 + 5), "{id}")
                }
                Resume::Replay(_) => panic!("{id} should resync"),
            }
        }
        let recent = live.id_of(REPLAY_CAPACITY as u64 + 2);
        assert_eq!(replayed(live.subscribe(Some(&recent)).0).len(), 3);
    }

    #[test]
    fn tickets_are_single_use_and_expire() {
        let (live, clock) = live();
        let ticket = live.issue_ticket(principal());
        assert_eq!(ticket.len(), 64);
        assert_eq!(
            live.redeem_ticket(&ticket).map(|p| p.token_name),
            Some("ops".to_string())
        );
        assert!(live.redeem_ticket(&ticket).is_none(), "used twice");

        let late = live.issue_ticket(principal());
        clock.advance(TICKET_TTL);
        assert!(live.redeem_ticket(&late).is_none(), "expired");
        assert!(live.redeem_ticket("not-a-ticket").is_none());
    }

    #[test]
    fn outstanding_tickets_are_bounded() {
        let (live, clock) = live();
        let first = live.issue_ticket(principal());
        for _ in 0..MAX_OUTSTANDING_TICKETS {
            clock.advance(Duration::from_millis(1));
            live.issue_ticket(principal());
        }
        assert!(
            live.redeem_ticket(&first).is_none(),
            "the oldest was dropped"
        );
        assert_eq!(lock(&live.inner.tickets).len(), MAX_OUTSTANDING_TICKETS);
    }
}
