//! A real HTTP receiver on 127.0.0.1 that records what it gets and answers as the
//! test scripts it (status, headers, delay), and helpers to run a delivery worker.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rampart_core::notify::{Message, Severity, Topic};
use rampart_notify::{DeliveryWorker, Notifiers};
use rampart_store::{Notification, NotificationQuery, NotificationState, Store};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: tokio::time::Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn body(mut self, body: &str) -> Answer {
        self.body = body.to_string();
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Answer {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Answers in order; when they run out, `otherwise`.
    script: VecDeque<Answer>,
    otherwise: Option<Answer>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// Answers `ok` (200) unless scripted otherwise.
    pub async fn start() -> Receiver {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.lock().unwrap().script.extend(answers);
    }

    pub fn otherwise(&self, answer: Answer) {
        self.inner.lock().unwrap().otherwise = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Waits until `n` requests came in (at most 30 s), and returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..3000 {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the receiver got {} requests, expected {n}",
            self.received().len()
        );
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = {
        let mut inner = inner.lock().unwrap();
        inner.received.push(Received {
            headers,
            body,
            at: tokio::time::Instant::now(),
        });
        inner
            .script
            .pop_front()
            .or_else(|| inner.otherwise.clone())
            .unwrap_or_else(|| Answer::status(200).body("ok"))
    };
    tokio::time::sleep(answer.delay).await;
    let mut response = (
        StatusCode::from_u16(answer.status).expect("a valid status"),
        answer.body,
    )
        .into_response();
    for (name, value) in answer.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("a valid header value"));
    }
    response
}

pub fn config(toml: &str) -> rampart_config::Config {
    rampart_config::parse(toml, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

pub struct Running {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

pub fn run_worker(store: &Store, config: &rampart_config::Config) -> Running {
    let (stop, stopped) = watch::channel(false);
    let handle = DeliveryWorker::new(store.clone(), Notifiers::from_config(config))
        .expect("an HTTP client")
        .spawn(stopped);
    Running { stop, handle }
}

pub fn message(topic: Topic, key: &str) -> Message {
    Message {
        topic,
        key: key.into(),
        service: Some("shop".into()),
        severity: Severity::High,
        summary: "high_error_rate on shop: error rate 9.8 % > 5 % for 30 s".into(),
        fields: vec![
            ("Reason".into(), "error rate 9.8 % > 5 %".into()),
            ("Rule".into(), "high_error_rate".into()),
        ],
        link: Some("/api/v1/incidents/42".into()),
        at: "2026-12-01T12:00:00Z".into(),
    }
}

pub fn enqueue(store: &Store, notifier: &str, message: &Message) -> i64 {
    store
        .with_tx(|tx| tx.enqueue_notification(notifier, message))
        .expect("enqueued")
}

/// Polls the store until notification `id` satisfies `done` (at most 30 s).
pub async fn wait_until(
    store: &Store,
    id: i64,
    what: &str,
    done: impl Fn(&Notification) -> bool,
) -> Notification {
    for _ in 0..3000 {
        let row = store.get_notification(id).unwrap().expect("the row exists");
        if done(&row) {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let row = store.get_notification(id).unwrap();
    panic!("notification {id} never became {what}: {row:?}");
}

pub async fn wait_for_state(store: &Store, id: i64, state: NotificationState) -> Notification {
    wait_until(store, id, state.as_str(), |row| row.state == state).await
}

pub fn all(store: &Store) -> Vec<Notification> {
    store
        .list_notifications(&NotificationQuery {
            limit: 1000,
            ..NotificationQuery::default()
        })
        .unwrap()
}
