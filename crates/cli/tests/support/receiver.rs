//! A minimal HTTP/1.1 receiver for notification tests: it speaks just enough HTTP
//! to take Slack's, PagerDuty's and webhooks' POSTs, records them, and can answer
//! with any status or hang.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Lowercase header names and values.
pub type Headers = Vec<(String, String)>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Answer(u16),
    /// Read the request, never answer (until the mode changes; then drop it).
    Hang,
}

/// A minimal HTTP/1.1 receiver on 127.0.0.1 (one thread per connection) that
/// records each request's headers and JSON body.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    pub got: Arc<Mutex<Vec<(Headers, Value, u16)>>>,
}

impl Receiver {
    pub fn start(mode: Mode) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let receiver = Receiver {
            addr: listener.local_addr().expect("local address"),
            mode: Arc::new(Mutex::new(mode)),
            got: Arc::default(),
        };
        let shared = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || shared.serve(stream));
            }
        });
        receiver
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream);
        loop {
            let mut headers = Vec::new();
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let trimmed = line.trim_end();
                if trimmed.is_empty() {
                    break;
                }
                if let Some((name, value)) = trimmed.split_once(':') {
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(name, _)| name == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mode = *self.mode.lock().unwrap();
            let status = match mode {
                Mode::Answer(status) => status,
                Mode::Hang => 0,
            };
            self.got.lock().unwrap().push((headers, body, status));
            if mode == Mode::Hang {
                while *self.mode.lock().unwrap() == Mode::Hang {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            let answer = if status == 202 {
                r#"{"status":"success","message":"Event processed"}"#
            } else {
                "ok"
            };
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{answer}",
                answer.len()
            );
            if reader.get_mut().write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }

    /// Bodies answered with a 2xx.
    pub fn delivered(&self) -> Vec<(Headers, Value)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, status)| (200..300).contains(status))
            .map(|(headers, body, _)| (headers.clone(), body.clone()))
            .collect()
    }

    pub fn wait_until(&self, what: &str, done: impl Fn(&[(Headers, Value)]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&self.delivered()) {
            assert!(
                Instant::now() < deadline,
                "{what}: the receiver got {:?}",
                self.delivered()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
