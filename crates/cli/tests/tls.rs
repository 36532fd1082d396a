//! TLS end to end through the real binary, on loopback: the API over HTTPS with a
//! private CA (and nothing in plain HTTP on its port), a service's router over HTTPS
//! with HTTP/1.1 and h2 by ALPN, the CLI with `--ca`, and SIGHUP swapping the
//! certificates in place, keeping the old one when the new files are broken.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use support::certs::{ServerCert, TestCa};
use support::{RampartServer, free_addr, rampart_bin, sample_app};

struct TlsSetup {
    server: RampartServer,
    ca_path: PathBuf,
    ca_pem: String,
    service: String,
    tls_dir: PathBuf,
    _app: support::SampleApp,
}

/// rampart with `[server.tls]` and a static service with `[service.tls]`, both on
/// `first` (files under tls/, given relative to the config's folder).
fn start(ca: &TestCa, first: &ServerCert) -> TlsSetup {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir(&tls_dir).expect("tls dir");
    first.write(&tls_dir.join("api.crt"), &tls_dir.join("api.key"));
    first.write(&tls_dir.join("web.crt"), &tls_dir.join("web.key"));
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).expect("write CA");

    let app_addr = free_addr();
    let app = sample_app(app_addr, "v1");
    let listen = free_addr();
    let addr = free_addr();
    let config = format!(
        r#"[server]
listen = "{addr}"
data_dir = "data"
tls = {{ cert = "tls/api.crt", key = "tls/api.key" }}

[[service]]
name = "web"
listen = "{listen}"
backend = {{ kind = "static", stable = ["{app_addr}"] }}
tls = {{ cert = "tls/web.crt", key = "tls/web.key" }}
"#
    );
    let config_path = dir.path().join("rampart.toml");
    std::fs::write(&config_path, config).expect("write config");
    let mut server = RampartServer::start_with(dir, config_path, addr);
    server.api = format!("https://127.0.0.1:{}", addr.port());
    let setup = TlsSetup {
        server,
        ca_path,
        ca_pem: ca.pem(),
        service: format!("https://127.0.0.1:{}", listen.port()),
        tls_dir,
        _app: app,
    };
    setup.wait_ready();
    setup
}

impl TlsSetup {
    /// A client trusting the test CA, telling the peer certificate, opening a new
    /// connection (so a new handshake) for every request.
    fn client(&self) -> Client {
        self.client_with(|b| b.pool_max_idle_per_host(0))
    }

    fn client_with(
        &self,
        more: impl FnOnce(reqwest::blocking::ClientBuilder) -> reqwest::blocking::ClientBuilder,
    ) -> Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA pem");
        more(
            Client::builder()
                .timeout(Duration::from_secs(10))
                .add_root_certificate(ca)
                .tls_info(true),
        )
        .build()
        .expect("client")
    }

    fn wait_ready(&self) {
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let api = client
                .get(format!("{}/health/live", self.server.api))
                .send()
                .is_ok_and(|r| r.status().is_success());
            let service = client
                .get(format!("{}/", self.service))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if api && service {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rampart did not serve over TLS:\n{}",
                self.server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn hangup(&self) {
        let pid = nix::unistd::Pid::from_raw(self.server.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    }
}

/// The certificate `url` presents to a new connection.
fn served_cert(client: &Client, url: &str) -> Vec<u8> {
    let response = client.get(url).send().expect("https request");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("peer certificate")
        .to_vec()
}

fn wait_until(what: &str, log: impl Fn() -> String, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}:\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cli(args: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new(rampart_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("RAMPART_TOKEN")
        .env_remove("RAMPART_API")
        .env_remove("RAMPART_CA")
        .output()
        .expect("run rampart")
}

#[test]
fn the_api_serves_https_only_and_the_cli_trusts_a_private_ca() {
    let ca = TestCa::new();
    let first = ca.server_cert("rampart-first", 1);
    let setup = start(&ca, &first);
    let api = &setup.server.api;

    // With the CA: served, authenticated requests work, and the certificate is ours.
    let client = setup.client();
    assert_eq!(
        served_cert(&client, &format!("{api}/health/ready")),
        first.der
    );
    let services = client
        .get(format!("{api}/api/v1/services"))
        .bearer_auth(&setup.server.admin_token)
        .send()
        .expect("services");
    assert_eq!(services.status(), 200);

    // Without it the certificate is refused; plain HTTP on the port gets no answer.
    let untrusting = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    assert!(untrusting.get(format!("{api}/health/live")).send().is_err());
    let plain = format!("http://{}/health/live", setup.server.addr);
    assert!(
        untrusting.get(&plain).send().is_err(),
        "plain HTTP must not be served on the TLS port"
    );

    // The CLI: `--ca` makes an https --api work, and without it the error says so.
    let cwd = setup.server.dir.path();
    let ca_arg = setup.ca_path.to_str().expect("utf-8 path");
    let token = setup.server.admin_token.as_str();
    let listed = cli(
        &[
            "services", "--api", api, "--token", token, "--ca", ca_arg, "-o", "json",
        ],
        cwd,
    );
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("\"web\""));
    let refused = cli(&["services", "--api", api, "--token", token], cwd);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--ca"), "{stderr}");

    // `rampart load` reaches the HTTPS router with the same flag.
    let load = cli(
        &[
            "load",
            &format!("{}/", setup.service),
            "--rate",
            "20",
            "--duration",
            "2s",
            "--ca",
            ca_arg,
        ],
        cwd,
    );
    let out = String::from_utf8_lossy(&load.stdout);
    assert!(
        load.status.success() && out.contains("v1"),
        "{out}\n{}",
        String::from_utf8_lossy(&load.stderr)
    );
}

#[test]
fn the_router_terminates_tls_with_http1_and_h2_by_alpn() {
    let ca = TestCa::new();
    let first = ca.server_cert("rampart-first", 1);
    let setup = start(&ca, &first);
    let url = format!("{}/", setup.service);

    let h1 = setup.client_with(|b| b.http1_only());
    let response = h1.get(&url).send().expect("h1 over TLS");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-app-version"], "v1");

    // ALPN offers h2 and the router takes it.
    let h2 = setup.client();
    let response = h2.get(&url).send().expect("h2 over TLS");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-app-version"], "v1");

    let plain = Client::new();
    assert!(
        plain
            .get(format!("http://{}", &setup.service["https://".len()..]))
            .send()
            .is_err(),
        "plain HTTP must not be served on a TLS listener"
    );
}

#[test]
fn sighup_swaps_certificates_and_a_broken_file_keeps_the_old_one() {
    let ca = TestCa::new();
    let first = ca.server_cert("rampart-first", 1);
    let renewed = ca.server_cert("rampart-renewed", 2);
    let setup = start(&ca, &first);
    let api_url = format!("{}/health/live", setup.server.api);
    let service_url = format!("{}/", setup.service);
    let fresh = setup.client();
    assert_eq!(served_cert(&fresh, &api_url), first.der);
    assert_eq!(served_cert(&fresh, &service_url), first.der);

    // A connection opened before the reload, kept alive across it.
    let kept = setup.client_with(|b| b.http1_only().pool_max_idle_per_host(1));
    assert_eq!(served_cert(&kept, &service_url), first.der);

    let tls = &setup.tls_dir;
    renewed.write(&tls.join("api.crt"), &tls.join("api.key"));
    renewed.write(&tls.join("web.crt"), &tls.join("web.key"));
    setup.hangup();
    let log = || setup.server.log();
    wait_until("the API did not serve the renewed certificate", log, || {
        served_cert(&fresh, &api_url) == renewed.der
    });
    wait_until(
        "the router did not serve the renewed certificate",
        log,
        || served_cert(&fresh, &service_url) == renewed.der,
    );
    // The established connection goes on, on the session it had.
    assert_eq!(
        served_cert(&kept, &service_url),
        first.der,
        "the kept-alive connection still works and is the old session"
    );

    // A broken certificate file: both listeners keep serving the renewed one.
    std::fs::write(tls.join("api.crt"), "not a certificate\n").expect("break cert");
    std::fs::write(tls.join("web.key"), ca.server_cert("other", 3).key_pem)
        .expect("mismatched key");
    setup.hangup();
    wait_until("the failed reload was not logged", log, || {
        let log = setup.server.log();
        log.contains("TLS certificate not reloaded")
            && log.contains("api.crt")
            && log.contains("web.key")
    });
    assert_eq!(served_cert(&fresh, &api_url), renewed.der);
    assert_eq!(served_cert(&fresh, &service_url), renewed.der);
    assert!(
        setup
            .server
            .log()
            .contains("is not the key of the certificate")
    );
}

#[test]
fn a_missing_or_mismatched_file_is_a_config_error_at_its_line() {
    let ca = TestCa::new();
    let cert = ca.server_cert("rampart", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    cert.write(&dir.path().join("cert.pem"), &dir.path().join("key.pem"));
    std::fs::write(
        dir.path().join("other.key"),
        ca.server_cert("other", 2).key_pem,
    )
    .expect("other key");
    let config = |server_tls: &str| {
        format!(
            "[server]\nlisten = \"0.0.0.0:7070\"\n{server_tls}\n\n[[service]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\nbackend = {{ kind = \"static\", stable = [\"127.0.0.1:9001\"] }}\n"
        )
    };
    let path = dir.path().join("rampart.toml");
    let check = |text: String| {
        std::fs::write(&path, text).expect("config");
        let out = cli(
            &["check-config", "--config", path.to_str().expect("utf-8")],
            dir.path(),
        );
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };

    // TLS lets the API listen beyond loopback.
    let (ok, out) = check(config("tls = { cert = \"cert.pem\", key = \"key.pem\" }"));
    assert!(ok, "{out}");

    let (ok, out) = check(config(
        "tls = { cert = \"missing.pem\", key = \"key.pem\" }",
    ));
    assert!(!ok);
    assert!(out.contains("rampart.toml:3"), "{out}");
    assert!(
        out.contains("missing.pem") && out.contains("no such file"),
        "{out}"
    );

    let (ok, out) = check(config("tls = { cert = \"cert.pem\", key = \"other.key\" }"));
    assert!(!ok);
    assert!(out.contains("rampart.toml:3"), "{out}");
    assert!(out.contains("is not the key of the certificate"), "{out}");
}
