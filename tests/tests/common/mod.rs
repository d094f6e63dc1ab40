//! The harness of the end-to-end evidence tests: the real
//! `annexa-collector` binary serving HTTPS on 127.0.0.1 from a temporary
//! data directory, the real `annexa` agent binary on temporary "hosts"
//! (a configuration file and a state directory each), an HTTP client that
//! trusts only the collector's CA, and checks of what the collector stored.
//!
//! Every child process is owned by a value whose `Drop` kills it, so a
//! failing test leaves nothing running. Waits are bounded and say what
//! they waited for.

// Each test file uses a different part of the harness.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use annexa_evidence::api::ApiError;
use annexa_evidence::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use annexa_evidence::encoding::b64_decode;
use annexa_evidence::keys::{PublicKey, SigningKey};
use annexa_evidence::receipt::Receipt;
use annexa_evidence::sha256_hex;
use annexa_evidence::statement::parse_scan_statement;
use serde_json::Value;

/// The default bound of waits for things that take a scan or two.
pub const WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Binaries

/// Source trees each binary is built from (relative to the workspace root),
/// to tell a stale binary from a fresh one.
fn sources_of(name: &str) -> &'static [&'static str] {
    // Not the manifests: a change to dev-dependencies rebuilds nothing.
    const AGENT: &[&str] = &[
        "agent/src",
        "checks/src",
        "checks/packs",
        "checks/data",
        "evidence/src",
    ];
    const COLLECTOR: &[&str] = &[
        "collector-server/src",
        "collector-server/migrations",
        "agent/src",
        "checks/src",
        "checks/packs",
        "checks/data",
        "evidence/src",
    ];
    if name == "annexa" { AGENT } else { COLLECTOR }
}

fn newest_file(path: &Path) -> Option<(SystemTime, PathBuf)> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return Some((meta.modified().ok()?, path.to_path_buf()));
    }
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(path).ok()?.flatten() {
        if let Some(n) = newest_file(&entry.path())
            && newest.as_ref().is_none_or(|(t, _)| n.0 > *t)
        {
            newest = Some(n);
        }
    }
    newest
}

/// A binary of the workspace, from the target directory this test runs
/// from (`target/<profile>/`). `cargo test --workspace` builds both
/// `annexa` and `annexa-collector` there; `cargo test -p annexa-tests`
/// does not build other packages' binaries, so a missing or stale binary
/// fails with the command that builds it rather than testing old code.
pub fn bin(name: &str) -> PathBuf {
    static CHECKED: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>")
        .join(name);
    let mut checked = CHECKED.lock().unwrap_or_else(|p| p.into_inner());
    if !checked.contains(name) {
        check_fresh(name, &bin);
        checked.insert(name.to_string());
    }
    bin
}

fn check_fresh(name: &str, bin: &Path) {
    let build = "build the binaries with `cargo build -p annexa-agent -p annexa-collector` \
                 (or run `cargo test --workspace`, which builds them)";
    let built = std::fs::metadata(bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {build}", bin.display()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    for src in sources_of(name) {
        if let Some((t, file)) = newest_file(&root.join(src))
            && t > built
        {
            panic!(
                "{} is older than {}: `cargo test -p annexa-tests` does not rebuild it; {build}",
                bin.display(),
                file.display()
            );
        }
    }
}

/// Standard output and error of a finished command, for messages.
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Sends SIGTERM to a child (std only knows SIGKILL).
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("running kill(1)");
    assert!(status.success(), "kill -TERM {} failed", child.id());
}

/// Waits for a child to exit, at most `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("waiting for a child") {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process that is killed if the test ends while it still runs.
pub struct Proc(pub Option<Child>);

impl Proc {
    /// SIGTERM, then wait up to 20 s for the exit status.
    pub fn terminate(&mut self, what: &str) -> ExitStatus {
        let mut child = self
            .0
            .take()
            .unwrap_or_else(|| panic!("{what} is not running"));
        sigterm(&child);
        wait_exit(
            &mut child,
            Duration::from_secs(20),
            &format!("{what} after SIGTERM"),
        )
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(&mut self, what: &str) {
        let mut child = self
            .0
            .take()
            .unwrap_or_else(|| panic!("{what} is not running"));
        child
            .kill()
            .unwrap_or_else(|e| panic!("SIGKILL {what}: {e}"));
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `annexa ARGS` (no colour, default logging, no input).
pub fn annexa(args: &[&str]) -> Output {
    annexa_env(args, &[])
}

/// [`annexa`] with environment variables set.
pub fn annexa_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(bin("annexa"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("ANNEXA_LOG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running annexa")
}

/// `annexa COMMAND… --server SERVER --ca CA --token-file TOKEN ARGS…`,
/// with `env` set.
pub fn annexa_api(
    command: &[&str],
    server: &str,
    ca: &Path,
    token_file: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
) -> Output {
    let mut all = command.to_vec();
    all.extend([
        "--server",
        server,
        "--ca",
        utf8(ca),
        "--token-file",
        utf8(token_file),
    ]);
    all.extend_from_slice(args);
    annexa_env(&all, env)
}

/// Runs `annexa-collector ARGS --data DIR [--config FILE]` on any data
/// directory.
pub fn collector_cli(data: &Path, config: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin("annexa-collector"));
    cmd.args(args).arg("--data").arg(data).stdin(Stdio::null());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.output().expect("running annexa-collector")
}

/// Polls `cond` every 50 ms until it holds; after `limit`, fails naming
/// `what` with `context()` (logs, state) for the reader.
pub fn wait_for(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Now as RFC 3339 UTC, whole seconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formatting a time")
}

/// A whole-second time strictly after everything recorded so far and
/// strictly before anything recorded next (recorded times have seconds or
/// finer).
pub fn a_moment_later() -> String {
    std::thread::sleep(Duration::from_millis(1100));
    let t = now_rfc3339();
    std::thread::sleep(Duration::from_millis(1100));
    t
}

/// A random number (for kill moments); std's hasher keys are random.
pub fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(Instant::now())
}

/// Hex SHA-256 fingerprint, `SHA256:` prefixed, of the first certificate
/// in a PEM file (what `annexa-collector init` prints).
pub fn pem_fingerprint(path: &Path) -> String {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let cert = CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .next()
        .expect("a certificate")
        .expect("a valid PEM certificate");
    format!("SHA256:{}", sha256_hex(cert.as_ref()))
}

// ---------------------------------------------------------------------------
// HTTP

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: status {} body {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as the API's error.
    pub fn error(&self) -> ApiError {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not an API error ({e}): status {} body {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client that trusts only the collector's CA (rustls with ring), with
/// no connection reuse, so a restarted collector is never reached through
/// a dead pooled connection.
pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    /// A client trusting the CA certificates in `ca_pem`.
    pub fn new(ca_pem: &[u8]) -> Http {
        let client = annexa_tests::load::tls_client(ca_pem, 0, Duration::from_secs(30))
            .expect("HTTP client");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        Http { rt, client }
    }

    /// One request; `Err` when there is no HTTP answer.
    pub fn try_send(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Response, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        self.rt.block_on(async move {
            let resp = req.send().await.map_err(|e| format!("{url}: {e:?}"))?;
            let status = resp.status().as_u16();
            let body = resp
                .bytes()
                .await
                .map_err(|e| format!("{url}: {e:?}"))?
                .to_vec();
            Ok(Response { status, body })
        })
    }
}

// ---------------------------------------------------------------------------
// The collector

/// A real `annexa-collector` on 127.0.0.1 with its own data directory.
/// Restarts keep the port and the data directory.
pub struct Collector {
    root: tempfile::TempDir,
    /// The data directory.
    pub data: PathBuf,
    /// `collector.toml`, if the test gave one.
    pub config: Option<PathBuf>,
    /// The fingerprint `init` printed.
    pub fingerprint: String,
    /// An admin API token (`api-token create --name admin`).
    pub admin: String,
    port: u16,
    child: Proc,
    starts: u32,
    http: Http,
}

impl Collector {
    /// Initializes a data directory and serves it.
    pub fn start() -> Collector {
        Collector::start_with("")
    }

    /// As [`Collector::start`], with this `collector.toml` (passed with
    /// `--config` to every command).
    pub fn start_with(config_toml: &str) -> Collector {
        let root = tempfile::tempdir().expect("temporary directory");
        let data = root.path().join("data");
        let config = (!config_toml.is_empty()).then(|| {
            let p = root.path().join("collector.toml");
            std::fs::write(&p, config_toml).expect("writing collector.toml");
            p
        });
        let mut c = Collector {
            data,
            config,
            fingerprint: String::new(),
            admin: String::new(),
            port: 0,
            child: Proc(None),
            starts: 0,
            http: Http::new(b""),
            root,
        };
        let o = c.cli(&["init", "--name", "127.0.0.1", "--name", "localhost"]);
        assert_eq!(o.status.code(), Some(0), "init: {}", show(&o));
        c.fingerprint = stdout(&o)
            .lines()
            .find_map(|l| l.strip_prefix("CA fingerprint: "))
            .unwrap_or_else(|| panic!("init printed no CA fingerprint: {}", show(&o)))
            .trim()
            .to_string();
        assert_eq!(
            c.fingerprint,
            pem_fingerprint(&c.ca_path()),
            "the printed fingerprint is the SHA-256 of ca.crt's DER"
        );
        c.http = Http::new(&std::fs::read(c.ca_path()).expect("ca.crt"));
        c.admin = c.api_token("admin", "admin");
        c.spawn("127.0.0.1:0");
        c
    }

    /// A second collector process with this one's keys, CA, certificate and
    /// configuration (a copy of its data directory), on a port of its own:
    /// with `database_url`, two collectors on one store, as behind a load
    /// balancer.
    pub fn sibling(&self) -> Collector {
        let root = tempfile::tempdir().expect("temporary directory");
        let data = root.path().join("data");
        let o = Command::new("cp")
            .arg("-a")
            .arg(&self.data)
            .arg(&data)
            .output()
            .expect("cp");
        assert!(
            o.status.success(),
            "copying the data directory: {}",
            show(&o)
        );
        let config = self.config.as_ref().map(|c| {
            let p = root.path().join("collector.toml");
            std::fs::copy(c, &p).expect("copying collector.toml");
            p
        });
        let mut c = Collector {
            data,
            config,
            fingerprint: self.fingerprint.clone(),
            admin: self.admin.clone(),
            port: 0,
            child: Proc(None),
            starts: 0,
            http: Http::new(&std::fs::read(self.ca_path()).expect("ca.crt")),
            root,
        };
        c.spawn("127.0.0.1:0");
        c
    }

    /// Replaces `collector.toml`; the next restart and commands read it.
    pub fn reconfigure(&mut self, config_toml: &str) {
        let p = self.root.path().join("collector.toml");
        std::fs::write(&p, config_toml).expect("writing collector.toml");
        self.config = Some(p);
    }

    /// Runs `annexa-collector ARGS --data DIR [--config FILE]`.
    pub fn cli(&self, args: &[&str]) -> Output {
        collector_cli(&self.data, self.config.as_deref(), args)
    }

    /// A new enrollment token (`token create`), with `--ttl` if given.
    pub fn enroll_token(&self, ttl: Option<&str>) -> String {
        let mut args = vec!["token", "create"];
        if let Some(t) = ttl {
            args.extend(["--ttl", t]);
        }
        let o = self.cli(&args);
        assert_eq!(o.status.code(), Some(0), "token create: {}", show(&o));
        let token = stdout(&o).trim().to_string();
        assert!(token.starts_with("annexa-enroll-"), "{}", show(&o));
        token
    }

    /// A new API token (`api-token create --name NAME --role ROLE`).
    pub fn api_token(&self, name: &str, role: &str) -> String {
        let o = self.cli(&["api-token", "create", "--name", name, "--role", role]);
        assert_eq!(o.status.code(), Some(0), "api-token create: {}", show(&o));
        let token = stdout(&o).trim().to_string();
        assert!(token.starts_with("annexa-api-"), "{}", show(&o));
        token
    }

    /// The CA certificate (PEM).
    pub fn ca_path(&self) -> PathBuf {
        self.data.join("ca.crt")
    }

    /// The collector's receipt key.
    pub fn receipt_key(&self) -> PublicKey {
        let path = self.data.join("collector.key");
        let der = std::fs::read(&path).expect("collector.key");
        SigningKey::from_pkcs8("collector.key", &der)
            .expect("collector key")
            .public()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The port, kept across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything the serving processes logged so far.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|n| std::fs::read_to_string(self.log_path(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("--- restart\n")
    }

    fn log_path(&self, n: u32) -> PathBuf {
        self.root.path().join(format!("serve-{n}.log"))
    }

    /// Starts `serve` on `listen`, learns the port from its log line and
    /// waits for `/healthz`. A port still held by a dying process is
    /// retried for a few seconds.
    fn spawn(&mut self, listen: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.starts += 1;
            let log = self.log_path(self.starts);
            let mut cmd = Command::new(bin("annexa-collector"));
            cmd.args(["serve", "--listen", listen])
                .arg("--data")
                .arg(&self.data)
                .env("ANNEXA_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("collector log"));
            if let Some(c) = &self.config {
                cmd.arg("--config").arg(c);
            }
            let mut child = cmd.spawn().expect("starting annexa-collector serve");
            let start = Instant::now();
            let addr = loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if let Some(addr) = text
                    .lines()
                    .find(|l| l.contains("collector listening (HTTPS)"))
                    .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("addr=")))
                {
                    break Some(addr.to_string());
                }
                if child.try_wait().expect("collector status").is_some() {
                    break None;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "the collector logged no `collector listening` line within 10 s:\n{text}"
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            let Some(addr) = addr else {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("in use") && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                panic!("annexa-collector serve exited:\n{text}");
            };
            let port: u16 = addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no port in addr={addr}"));
            assert!(addr.starts_with("127.0.0.1:"), "{addr}");
            self.port = port;
            self.child = Proc(Some(child));
            break;
        }
        wait_for(
            "the collector's /healthz",
            Duration::from_secs(10),
            || {
                self.http
                    .try_send("GET", &format!("{}/healthz", self.url()), None, None)
                    .is_ok_and(|r| r.status == 200)
            },
            || self.log(),
        );
    }

    /// Whether the serving process is running.
    pub fn running(&self) -> bool {
        self.child.0.is_some()
    }

    /// SIGTERM: graceful shutdown; returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.child.terminate("the collector")
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(&mut self) {
        self.child.kill("the collector");
    }

    /// Serves again on the same port and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.0.is_none(), "stop or kill the collector first");
        let listen = format!("127.0.0.1:{}", self.port);
        self.spawn(&listen);
    }

    /// A request to the API; panics when there is no answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Response {
        let url = format!("{}{path}", self.url());
        self.http
            .try_send(method, &url, token, body)
            .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}\n{}", self.log()))
    }

    /// Imports an SoA (TOML) with the admin token, expecting success.
    pub fn import_soa(&self, toml: &str) {
        let r = self.request(
            "POST",
            "/v1/soa",
            Some(&self.admin),
            Some(toml.as_bytes().to_vec()),
        );
        assert!(r.status < 300, "importing the SoA: {}", r.text());
    }

    /// GET with the admin token, expecting 200.
    pub fn get(&self, path: &str) -> Response {
        let r = self.request("GET", path, Some(&self.admin), None);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r
    }

    /// `POST /v1/evidence` with these bytes.
    pub fn post_evidence(&self, bytes: &[u8]) -> Response {
        self.request("POST", "/v1/evidence", None, Some(bytes.to_vec()))
    }

    /// `GET /v1/hosts`.
    pub fn hosts(&self) -> Vec<Value> {
        self.get("/v1/hosts")
            .json()
            .as_array()
            .expect("a list of hosts")
            .clone()
    }

    /// `GET /v1/hosts/{id}`.
    pub fn host(&self, id: &str) -> Value {
        self.get(&format!("/v1/hosts/{id}")).json()
    }

    /// Every envelope's metadata of an agent (all pages).
    pub fn evidence(&self, agent: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .get(&format!(
                    "/v1/hosts/{agent}/evidence?after={after}&limit=1000"
                ))
                .json();
            let page = page.as_array().expect("a list of envelopes").clone();
            let Some(last) = page.last() else {
                return all;
            };
            after = last["sequence"].as_u64().expect("sequence");
            all.extend(page);
        }
    }

    /// The sequence numbers stored for an agent.
    pub fn sequences(&self, agent: &str) -> Vec<u64> {
        self.evidence(agent)
            .iter()
            .map(|m| m["sequence"].as_u64().expect("sequence"))
            .collect()
    }

    /// The stored bytes of one envelope.
    pub fn envelope(&self, agent: &str, seq: u64) -> Vec<u8> {
        self.get(&format!("/v1/hosts/{agent}/evidence/{seq}")).body
    }

    /// The Prometheus text.
    pub fn metrics(&self) -> String {
        self.get("/metrics").text()
    }
}

/// The value of a Prometheus sample (`name{labels}` exactly as printed),
/// 0 when absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------
// Agent hosts

/// A receipt as the agent keeps it, with its decoded body.
#[derive(Debug, Clone)]
pub struct KeptReceipt {
    /// The collector's receipt envelope.
    pub envelope: Envelope,
    /// Its payload.
    pub receipt: Receipt,
}

/// An agent "host": `agent.toml` and a state directory in a temporary
/// directory, driven through the real `annexa` binary.
pub struct Host {
    dir: tempfile::TempDir,
    /// agent.toml.
    pub config: PathBuf,
    /// The state directory.
    pub state: PathBuf,
}

impl Host {
    /// A host whose configuration names `server`, its state directory, an
    /// empty packs directory, no splay and a 1 s retry ceiling, plus
    /// `extra` TOML.
    pub fn new(server: &str, extra: &str) -> Host {
        let dir = tempfile::tempdir().expect("temporary directory");
        let state = dir.path().join("state");
        let packs = dir.path().join("checks.d");
        std::fs::create_dir(&packs).expect("packs dir");
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "server = \"{server}\"\nstate_dir = \"{}\"\npacks_dir = \"{}\"\nsplay_seconds = 0\n\
                 retry_max_seconds = 1\n{extra}",
                state.display(),
                packs.display()
            ),
        )
        .expect("writing agent.toml");
        Host { dir, config, state }
    }

    /// Adds a check pack (TOML) to this host's packs directory, as
    /// `checks.d/e2e.toml`.
    pub fn add_pack(&self, toml: &str) {
        std::fs::write(self.dir.path().join("checks.d").join("e2e.toml"), toml)
            .expect("writing the pack");
    }

    /// The temporary directory holding everything of this host.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `annexa ARGS`.
    pub fn annexa(&self, args: &[&str]) -> Output {
        annexa(args)
    }

    pub fn cfg(&self) -> &str {
        self.config.to_str().expect("UTF-8 path")
    }

    /// `annexa enroll` pinning the collector's CA by fingerprint.
    pub fn enroll(&self, c: &Collector, token: &str) -> Output {
        self.annexa(&[
            "enroll",
            "--server",
            &c.url(),
            "--token",
            token,
            "--ca-fingerprint",
            &c.fingerprint,
            "--config",
            self.cfg(),
        ])
    }

    /// `annexa enroll` pinning the collector's CA file.
    pub fn enroll_with_ca(&self, c: &Collector, token: &str) -> Output {
        self.annexa(&[
            "enroll",
            "--server",
            &c.url(),
            "--token",
            token,
            "--ca",
            c.ca_path().to_str().expect("UTF-8 path"),
            "--config",
            self.cfg(),
        ])
    }

    /// Enrolls by fingerprint with a fresh token; returns the agent id.
    pub fn enrolled(c: &Collector, extra: &str) -> Host {
        let host = Host::new(&c.url(), extra);
        let o = host.enroll(c, &c.enroll_token(None));
        assert_eq!(o.status.code(), Some(0), "enroll: {}", show(&o));
        host
    }

    /// `annexa run --once [EXTRA]`.
    pub fn run_once(&self, extra: &[&str]) -> Output {
        let mut args = vec!["run", "--once", "--config", self.cfg()];
        args.extend_from_slice(extra);
        self.annexa(&args)
    }

    /// `annexa run --once`, expecting exit 0; returns standard output.
    pub fn run_once_ok(&self) -> String {
        let o = self.run_once(&[]);
        assert_eq!(o.status.code(), Some(0), "run --once: {}", show(&o));
        stdout(&o)
    }

    /// Starts the daemon (`annexa run`), logging to a file.
    pub fn daemon(&self) -> Daemon {
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = self.dir.path().join(format!("daemon-{n}.log"));
        let child = Command::new(bin("annexa"))
            .args(["run", "--config", self.cfg()])
            .env("NO_COLOR", "1")
            .env_remove("ANNEXA_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("daemon log"))
            .spawn()
            .expect("starting annexa run");
        Daemon {
            child: Proc(Some(child)),
            log,
        }
    }

    /// The agent id from `enrollment.json`.
    pub fn agent_id(&self) -> String {
        self.enrollment()["agent_id"]
            .as_str()
            .expect("agent_id")
            .to_string()
    }

    /// `enrollment.json`.
    pub fn enrollment(&self) -> Value {
        read_json(&self.state.join("enrollment.json"))
    }

    /// The agent's signing key (PKCS#8 DER in `agent.key`).
    pub fn key(&self) -> SigningKey {
        let der = std::fs::read(self.state.join("agent.key")).expect("agent.key");
        SigningKey::from_pkcs8("agent.key", &der).expect("agent key")
    }

    /// `chain.json`: (last_sequence, last_digest).
    pub fn chain(&self) -> (u64, Option<String>) {
        let v = read_json(&self.state.join("chain.json"));
        (
            v["last_sequence"].as_u64().expect("last_sequence"),
            v["last_digest"].as_str().map(str::to_string),
        )
    }

    /// Sequence numbers in the spool, ascending.
    pub fn spooled(&self) -> Vec<u64> {
        let mut seqs: Vec<u64> = std::fs::read_dir(self.state.join("spool"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_suffix(".dsse.json")?
                            .parse()
                            .ok()
                    })
                    .collect()
            })
            .unwrap_or_default();
        seqs.sort();
        seqs
    }

    /// The spooled bytes of `seq`.
    pub fn spool_file(&self, seq: u64) -> PathBuf {
        self.state.join(format!("spool/{seq:020}.dsse.json"))
    }

    /// `receipts.jsonl`, in file order.
    pub fn receipts(&self) -> Vec<KeptReceipt> {
        std::fs::read_to_string(self.state.join("receipts.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let envelope = Envelope::from_json(l.as_bytes()).expect("receipt envelope");
                let payload = b64_decode(&envelope.payload).expect("base64 payload");
                let receipt = serde_json::from_slice(&payload).expect("receipt payload");
                KeptReceipt { envelope, receipt }
            })
            .collect()
    }
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A running `annexa run`.
pub struct Daemon {
    child: Proc,
    log: PathBuf,
}

impl Daemon {
    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.child.terminate("the agent")
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.child.kill("the agent");
    }

    /// Whether it has exited (and with what).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .0
            .as_mut()
            .and_then(|c| c.try_wait().expect("daemon status"))
    }
}

// ---------------------------------------------------------------------------
// Envelopes

/// The statement inside an envelope's bytes, as JSON (not verified).
pub fn statement_of(envelope: &[u8]) -> Value {
    let env = Envelope::from_json(envelope).expect("DSSE envelope");
    let payload = b64_decode(&env.payload).expect("base64 payload");
    serde_json::from_slice(&payload).expect("JSON statement")
}

/// Signs `payload` as an in-toto envelope with `key`; its JSON bytes.
pub fn sign_payload(payload: &[u8], key: &SigningKey) -> Vec<u8> {
    annexa_evidence::dsse::sign(IN_TOTO_PAYLOAD_TYPE, payload, key).to_json()
}

/// Signs a statement (JSON) with `key`.
pub fn sign_statement(statement: &Value, key: &SigningKey) -> Vec<u8> {
    sign_payload(&serde_json::to_vec(statement).expect("statement JSON"), key)
}

/// One envelope as the collector stores it, checked.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its sequence number.
    pub sequence: u64,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Its `previous`.
    pub previous: Option<String>,
    /// The sequences its gap declares.
    pub gap: Option<Vec<u64>>,
    /// The metadata the list returned.
    pub meta: Value,
}

/// Fetches and checks every envelope the collector holds for `agent`:
/// the listing is strictly ascending; the bytes hash to the listed digest,
/// verify as DSSE with the agent's key and carry a scan statement of that
/// agent and sequence; each `previous` names the envelope before it, and a
/// jump is covered by a gap naming exactly the skipped numbers. Returns
/// them in order.
pub fn stored_chain(c: &Collector, agent: &str, key: &PublicKey) -> Vec<Stored> {
    let mut out: Vec<Stored> = Vec::new();
    for meta in c.evidence(agent) {
        let sequence = meta["sequence"].as_u64().expect("sequence");
        let bytes = c.envelope(agent, sequence);
        let sha256 = sha256_hex(&bytes);
        assert_eq!(
            meta["sha256"],
            sha256.as_str(),
            "{agent} envelope {sequence}"
        );
        let verified = Envelope::from_json(&bytes)
            .expect("stored envelope")
            .verify(IN_TOTO_PAYLOAD_TYPE, std::slice::from_ref(key), 1)
            .unwrap_or_else(|e| panic!("{agent} envelope {sequence}: {e}"));
        let st = parse_scan_statement(&verified.payload).expect("scan statement");
        let p = &st.predicate;
        assert_eq!(p.sequence, sequence, "{agent}");
        assert_eq!(p.agent.id, agent);
        let gap = p.gap.as_ref().map(|g| g.dropped.clone());
        let expected_prev = out.last().map_or(0, |s| s.sequence);
        assert!(
            sequence > expected_prev,
            "{agent}: listing not ascending at {sequence}"
        );
        if sequence == expected_prev + 1 {
            assert_eq!(
                p.previous,
                out.last().map(|s| s.sha256.clone()),
                "{agent} envelope {sequence}: previous does not name envelope {expected_prev}"
            );
        } else {
            let skipped: Vec<u64> = (expected_prev + 1..sequence).collect();
            assert_eq!(
                gap.as_deref(),
                Some(skipped.as_slice()),
                "{agent} envelope {sequence} follows {expected_prev} without a gap naming the skipped numbers"
            );
            assert_eq!(meta["gap"], serde_json::json!(skipped), "{agent}");
        }
        out.push(Stored {
            sequence,
            sha256,
            bytes,
            previous: p.previous.clone(),
            gap,
            meta,
        });
    }
    out
}

/// Checks that every receipt an agent kept verifies with the collector's
/// key for the envelope the collector stores under its sequence number
/// (same digest); returns the receipts' sequence numbers in file order.
pub fn receipts_match(c: &Collector, host: &Host, chain: &[Stored]) -> Vec<u64> {
    let key = c.receipt_key();
    let agent = host.agent_id();
    host.receipts()
        .iter()
        .map(|r| {
            let seq = r.receipt.sequence;
            let stored = chain
                .iter()
                .find(|s| s.sequence == seq)
                .unwrap_or_else(|| panic!("{agent}: a receipt for {seq}, which is not stored"));
            Receipt::verify(&r.envelope, &key, &stored.sha256, &agent, seq)
                .unwrap_or_else(|e| panic!("{agent}: receipt for {seq}: {e}"));
            seq
        })
        .collect()
}

/// The numbers 1..=n.
pub fn one_to(n: u64) -> Vec<u64> {
    (1..=n).collect()
}

/// Distinct values.
pub fn distinct(v: &[u64]) -> BTreeSet<u64> {
    v.iter().copied().collect()
}

/// The example ISO/IEC 27001:2013 SoA.
pub const SOA_2013: &str = include_str!("../../../examples/soa/iso27001-2013.toml");

/// A pack whose only check passes once a marker file exists: a check
/// whose outcome the test controls on the live host.
/// Writes [`marker_pack`] for `marker` into the directory `packs` (made if
/// missing) and returns the collector.toml line that loads it.
pub fn collector_packs(packs: &Path, marker: &Path) -> String {
    std::fs::create_dir_all(packs).expect("the packs directory");
    std::fs::write(packs.join("e2e.toml"), marker_pack(marker)).expect("writing the pack");
    format!("pack_dirs = [\"{}\"]\n", packs.display())
}

pub fn marker_pack(marker: &std::path::Path) -> String {
    format!(
        "[pack]\nid = \"e2e\"\ntitle = \"e2e\"\nversion = \"1\"\ndescription = \"test\"\n\n\
         [[check]]\nid = \"e2e.marker\"\ntitle = \"The marker exists\"\nrationale = \"r\"\n\
         remediation = \"touch it\"\nseverity = \"low\"\ncontrols = {{ \"2013\" = [\"A.12.4.1\"] }}\n\
         probe = {{ kind = \"file\", path = \"{}\" }}\n",
        marker.display()
    )
}

/// The 2013 example with A.12.4.1 evidenced by the marker check only.
pub fn soa_with_marker() -> String {
    SOA_2013.replacen(
        "id = \"A.12.4.1\"  # Event logging\napplicable = true\n",
        "id = \"A.12.4.1\"  # Event logging\napplicable = true\nchecks = [\"e2e.marker\"]\n",
        1,
    )
}

/// The SARIF 2.1.0 JSON schema (tests/schemas/README.md names its source).
const SARIF_SCHEMA: &str = include_str!("../../schemas/sarif-schema-2.1.0.json");

/// The Ant JUnit XML schema (tests/schemas/README.md names its source).
pub const JUNIT_XSD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/JUnit.xsd");

/// Asserts that `doc` validates against the JSON schema `schema` (formats
/// checked), naming `what` and the first errors.
pub fn assert_schema_valid(schema: &str, doc: &Value, what: &str) {
    let schema: Value = serde_json::from_str(schema).expect("schema");
    let v = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .take(10)
        .collect();
    assert!(errors.is_empty(), "{what} does not validate: {errors:#?}");
}

/// Asserts that a SARIF file validates against the SARIF 2.1.0 schema;
/// returns the document.
pub fn sarif_valid(path: &Path) -> Value {
    let doc: Value =
        serde_json::from_slice(&std::fs::read(path).expect("SARIF file")).expect("SARIF is JSON");
    assert_schema_valid(SARIF_SCHEMA, &doc, "SARIF");
    doc
}

/// Asserts that a JUnit XML file validates against the Ant JUnit schema
/// (with xmllint); returns its text.
pub fn junit_valid(path: &Path) -> String {
    let x = Command::new("xmllint")
        .args(["--noout", "--schema", JUNIT_XSD])
        .arg(path)
        .output()
        .expect("xmllint (Debian's libxml2-utils; .ci/run installs it)");
    assert!(x.status.success(), "JUnit does not validate: {}", show(&x));
    std::fs::read_to_string(path).expect("JUnit file")
}

/// A path as the `&str` a command line takes.
pub fn utf8(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `annexa report pull` from `c` with the token in `token_file` into
/// `out`, plus `extra` arguments.
pub fn pull_report(c: &Collector, token_file: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--out", utf8(out)];
    args.extend_from_slice(extra);
    annexa_api(
        &["report", "pull"],
        &c.url(),
        &c.ca_path(),
        token_file,
        &args,
        &[],
    )
}

/// Pulls a report from `c` into `dir` and verifies it offline with the
/// verifier key in `key_file`; both must succeed. Returns the report file.
pub fn assert_report_verifies(
    c: &Collector,
    token_file: &Path,
    key_file: &Path,
    dir: &Path,
) -> PathBuf {
    let report = dir.join("report.json");
    let o = pull_report(c, token_file, &report, &[]);
    assert_eq!(o.status.code(), Some(0), "report pull: {}", show(&o));
    let o = annexa(&[
        "verify",
        "report",
        utf8(&report),
        "--collector-key",
        utf8(key_file),
    ]);
    assert_eq!(o.status.code(), Some(0), "verify report: {}", show(&o));
    report
}

/// `annexa verify log` online against `c`, with the verifier key in
/// `key_file` and an agent's held `checkpoint`, which must pass; its
/// standard output.
pub fn assert_log_verifies(
    c: &Collector,
    token_file: &Path,
    key_file: &Path,
    checkpoint: &Path,
) -> String {
    let o = annexa_api(
        &["verify", "log"],
        &c.url(),
        &c.ca_path(),
        token_file,
        &[
            "--collector-key",
            utf8(key_file),
            "--checkpoint",
            utf8(checkpoint),
        ],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "verify log at {}: {}",
        c.url(),
        show(&o)
    );
    stdout(&o)
}

/// `annexa-collector log key` into `dir/collector.vkey`.
pub fn verifier_key_file(c: &Collector, dir: &Path) -> PathBuf {
    let o = c.cli(&["log", "key"]);
    assert_eq!(o.status.code(), Some(0), "log key: {}", show(&o));
    let key = dir.join("collector.vkey");
    std::fs::write(&key, stdout(&o)).unwrap();
    key
}

/// The collector's verifier key and an auditor token, in files under `dir`.
pub fn auditor_files(c: &Collector, dir: &Path) -> (PathBuf, PathBuf) {
    let key = verifier_key_file(c, dir);
    let token = dir.join("auditor.token");
    std::fs::write(&token, c.api_token("auditor", "auditor")).unwrap();
    (key, token)
}

/// Runs SQL against a stopped collector's database.
pub fn tamper(data: &Path, sql: &[String]) {
    let db = data.join("collector.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .unwrap();
        for q in sql {
            sqlx::query(q).execute(&mut conn).await.unwrap();
        }
    });
}
