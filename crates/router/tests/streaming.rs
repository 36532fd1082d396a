//! 100 MB through the router each way with flat memory: bodies are streamed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::*;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

const SIZE: u64 = 100 * 1024 * 1024;
const ALLOWED_GROWTH_KB: u64 = 20 * 1024;

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Samples the resident set every few milliseconds and keeps the peak.
struct PeakRss {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl PeakRss {
    fn start() -> Self {
        let peak = Arc::new(AtomicU64::new(rss_kb()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    peak.fetch_max(rss_kb(), Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            })
        };
        Self { peak, stop, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        self.peak.load(Ordering::SeqCst).max(rss_kb())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_megabytes_up_and_down_with_flat_memory() {
    let upstream = TestUpstream::start("u").await;
    let router = start(route(settings(), &[&upstream], &[], 0.0)).await;
    let addr = router.service("shop").unwrap().listen_addr();
    let client = client();
    // Warm up pools, buffers and the allocator before the baseline.
    assert_eq!(
        get(&client, addr, "/download/1048576", &[])
            .await
            .body
            .len(),
        1 << 20
    );

    let baseline = rss_kb();
    let peak = PeakRss::start();

    let upload = StreamBody::new(chunks(SIZE).map(|c| Ok(Frame::data(c))));
    let request = http::Request::post(format!("http://{addr}/upload"))
        .header("content-length", SIZE.to_string())
        .body(BodyExt::boxed(upload))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let counted = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(counted, SIZE.to_string().as_bytes());

    let request = http::Request::get(format!("http://{addr}/download/{SIZE}"))
        .body(BodyExt::boxed(http_body_util::Empty::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len() as u64;
        }
    }
    assert_eq!(received, SIZE);

    let growth = peak.finish().saturating_sub(baseline);
    assert!(
        growth <= ALLOWED_GROWTH_KB,
        "resident memory grew by {growth} kB while moving 200 MB"
    );
}
