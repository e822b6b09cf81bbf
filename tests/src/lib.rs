//! Harness for Vidsync's end-to-end tests: starts the real `vidsync-server`
//! binary on a free loopback port with its own data directory, and drives it
//! with a real HTTP client (reqwest) and a real Socket.IO client
//! (rust_socketio). Set `TEST_LOG=1` to see the server's logs.

pub mod burst;
pub mod moves;
pub mod proxy;
pub mod raw;
pub mod tmpfs;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Where the `vidsync` client binary is: `VIDSYNC_BIN`, else beside the
/// server binary.
pub fn client_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VIDSYNC_BIN") {
        return PathBuf::from(p);
    }
    let bin = server_bin().with_file_name("vidsync");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p vidsync-client` first (make test does)",
        bin.display()
    );
    bin
}

/// Where the server binary is: `VIDSYNC_SERVER_BIN`, else next to the test
/// binary's target directory (`make test` builds it first).
pub fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VIDSYNC_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/<test> -> target/debug/vidsync-server
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("vidsync-server");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p vidsync-server` first (make test does)",
        bin.display()
    );
    bin
}

/// A running `vidsync-server` process with its own data directory.
pub struct TestServer {
    pub url: String,
    pub port: u16,
    data: tempfile::TempDir,
    /// A data dir the test owns (e.g. a small tmpfs) instead of `data`.
    data_at: Option<PathBuf>,
    extra: Vec<String>,
    child: Option<Child>,
}

impl TestServer {
    pub async fn start() -> Result<TestServer> {
        Self::start_with(&[]).await
    }

    /// Starts with extra `serve` flags (e.g. `--max-blob-bytes 1000`).
    pub async fn start_with(extra: &[&str]) -> Result<TestServer> {
        Self::start_in(None, extra).await
    }

    /// Starts with its data in `dir` (which the caller keeps alive), or in a
    /// fresh temp dir when `None`.
    pub async fn start_in(dir: Option<&Path>, extra: &[&str]) -> Result<TestServer> {
        let data = tempfile::tempdir()?;
        let mut s = TestServer {
            url: String::new(),
            port: 0,
            data,
            data_at: dir.map(Path::to_path_buf),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        s.launch().await?;
        Ok(s)
    }

    /// Replaces the extra `serve` flags used by the next (re)start.
    pub fn set_extra(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
    }

    pub fn data_dir(&self) -> &Path {
        self.data_at.as_deref().unwrap_or(self.data.path())
    }

    async fn launch(&mut self) -> Result<()> {
        let listen = format!("127.0.0.1:{}", self.port);
        let mut cmd = Command::new(server_bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg(&listen)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if std::env::var_os("TEST_LOG").is_some() {
            cmd.stderr(Stdio::inherit());
        } else {
            cmd.stderr(Stdio::null()).env("RUST_LOG", "warn");
        }
        let mut child = cmd.spawn().context("spawning vidsync-server")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .context("server did not say it was listening")??
            .ok_or_else(|| anyhow!("server exited before listening"))?;
        let url = line
            .strip_prefix("vidsync-server listening on ")
            .ok_or_else(|| anyhow!("unexpected first line {line:?}"))?
            .to_string();
        self.port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow!("no port in {url}"))?;
        self.url = url;
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        Ok(())
    }

    /// Runs `vidsync-server user add NAME` on this data dir; returns the token.
    pub async fn add_user(&self, name: &str) -> Result<String> {
        let out = self.admin(&["user", "add", name]).await?;
        Ok(out.trim().to_string())
    }

    /// Runs an admin subcommand against this data dir; returns stdout.
    pub async fn admin(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(server_bin())
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env("RUST_LOG", "warn")
            .output()
            .await?;
        if !out.status.success() {
            bail!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// SIGTERM, then wait for the process to exit; returns its exit status.
    pub async fn stop(&mut self) -> Result<std::process::ExitStatus> {
        terminate(self.child.take()).await
    }

    /// SIGKILL: the crash case.
    pub async fn kill9(&mut self) -> Result<()> {
        kill9(self.child.take()).await
    }

    /// Starts again on the same data dir and the same port.
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.stop().await?;
        }
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match self.launch().await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%e, "restart failed, retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A sample of `/metrics`: `name` with its labels as the exposition
    /// writes them (`vidsync_x{via="socket"}`); `None` if it is absent.
    pub async fn metric(&self, name: &str) -> Result<Option<f64>> {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await?
            .text()
            .await?;
        Ok(text.lines().find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().ok()).flatten()
        }))
    }

    pub fn api(&self, token: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: self.url.clone(),
            token: token.to_string(),
        }
    }
}

/// An HTTP client of the API with one user's token.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

/// Status and JSON body (Null when the body is not JSON).
pub type Reply = (u16, Value);

async fn reply(resp: reqwest::Response) -> Result<Reply> {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

impl Api {
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: token.to_string(),
            ..self.clone()
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Result<Reply> {
        reply(
            self.http
                .get(self.url(path))
                .bearer_auth(&self.token)
                .send()
                .await?,
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        reply(
            self.http
                .post(self.url(path))
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await?,
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Result<Reply> {
        let req = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .header("content-type", "application/json");
        reply(req.body(body).send().await?).await
    }

    /// A GET's status and raw body bytes, with an optional `Range`.
    pub async fn get_bytes(&self, path: &str, range: Option<&str>) -> Result<(u16, Vec<u8>)> {
        let mut req = self.http.get(self.url(path)).bearer_auth(&self.token);
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let resp = req.send().await?;
        Ok((resp.status().as_u16(), resp.bytes().await?.to_vec()))
    }

    /// `POST …/chunks` with a body of frames.
    pub async fn post_frames(&self, project_id: &str, frames: Vec<u8>) -> Result<Reply> {
        let req = self
            .http
            .post(self.url(&format!("/api/projects/{project_id}/chunks")))
            .bearer_auth(&self.token)
            .header("content-type", "application/octet-stream");
        reply(req.body(frames).send().await?).await
    }

    pub async fn create_project(&self, name: &str) -> Result<Value> {
        let (status, body) = self.post("/api/projects", &json!({ "name": name })).await?;
        if status != 201 {
            bail!("create project: {status} {body}");
        }
        Ok(body)
    }

    /// Creates a project; returns its id.
    pub async fn new_project(&self, name: &str) -> Result<String> {
        let p = self.create_project(name).await?;
        p["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no id in {p}"))
    }

    /// Creates an invite as this user and accepts it as `other`.
    pub async fn invite(&self, project_id: &str, other: &Api) -> Result<()> {
        let (s, inv) = self
            .post(&format!("/api/projects/{project_id}/invites"), &json!({}))
            .await?;
        if s != 201 {
            bail!("invite: {s} {inv}");
        }
        let code = inv["code"].as_str().ok_or_else(|| anyhow!("no code"))?;
        let (s, body) = other
            .post(&format!("/api/invites/{code}/accept"), &json!({}))
            .await?;
        if s != 200 {
            bail!("accept: {s} {body}");
        }
        Ok(())
    }

    pub async fn update(
        &self,
        project_id: &str,
        client_id: &str,
        changes: Vec<Value>,
    ) -> Result<Reply> {
        self.post(
            &format!("/api/projects/{project_id}/files/update"),
            &json!({ "client_id": client_id, "changes": changes }),
        )
        .await
    }

    /// The project's head seq, or 0 when the server cannot tell (a wait
    /// on it simply goes on).
    pub async fn head_seq(&self, project_id: &str) -> u64 {
        self.events(project_id, u64::MAX / 2)
            .await
            .ok()
            .and_then(|(_, p)| p["head_seq"].as_u64())
            .unwrap_or(0)
    }

    pub async fn events(&self, project_id: &str, since: u64) -> Result<Reply> {
        self.get(&format!(
            "/api/projects/{project_id}/events?since_seq={since}&limit=10000"
        ))
        .await
    }

    /// Every event of a project, through as many pages as it takes.
    pub async fn all_events(&self, project_id: &str) -> Result<Vec<Value>> {
        let mut out: Vec<Value> = Vec::new();
        loop {
            let since = out.last().and_then(|e| e["seq"].as_u64()).unwrap_or(0);
            let (s, page) = self.events(project_id, since).await?;
            if s != 200 {
                bail!("events: {s} {page}");
            }
            let evs = page["events"].as_array().cloned().unwrap_or_default();
            if evs.is_empty() {
                return Ok(out);
            }
            out.extend(evs);
        }
    }

    pub async fn put_blob(&self, project_id: &str, hash: &str, bytes: Vec<u8>) -> Result<Reply> {
        let url = self.url(&format!("/api/projects/{project_id}/blobs/{hash}"));
        reply(
            self.http
                .put(url)
                .bearer_auth(&self.token)
                .body(bytes)
                .send()
                .await?,
        )
        .await
    }
}

/// A `create` change for `path` with content `bytes` (not uploaded).
pub fn create_change(path: &str, bytes: &[u8], change_id: Option<&str>) -> Value {
    json!({
        "path": path,
        "op": "create",
        "hash": blake3::hash(bytes).to_hex().to_string(),
        "size": bytes.len(),
        "mtime": "2026-11-22T10:00:00Z",
        "change_id": change_id,
    })
}

/// A real Socket.IO client (rust_socketio, async) with its events in a queue.
pub struct Live {
    pub client: Client,
    events: mpsc::UnboundedReceiver<Value>,
    presence: mpsc::UnboundedReceiver<Value>,
    connects: mpsc::UnboundedReceiver<()>,
}

/// Why a Socket.IO connection did not open.
#[derive(Debug)]
pub enum ConnectFailure {
    /// The server refused the handshake (`connect_error`).
    Refused(String),
    Other(anyhow::Error),
}

impl Live {
    pub async fn connect(url: &str, token: &str) -> Result<Live> {
        Self::connect_with(
            url,
            Some(json!({ "token": token })),
            TransportType::Websocket,
        )
        .await
        .map_err(|e| anyhow!("{e:?}"))
    }

    pub async fn connect_with(
        url: &str,
        auth: Option<Value>,
        transport: TransportType,
    ) -> Result<Live, ConnectFailure> {
        let (ev_tx, events) = mpsc::unbounded_channel();
        let (presence_tx, presence) = mpsc::unbounded_channel();
        let (conn_tx, connects) = mpsc::unbounded_channel();
        let (err_tx, mut errors) = mpsc::unbounded_channel::<String>();
        let mut builder = ClientBuilder::new(url)
            .transport_type(transport)
            .reconnect(true)
            .reconnect_delay(200, 1000)
            .on(Event::Connect, move |_, _| {
                let tx = conn_tx.clone();
                async move {
                    let _ = tx.send(());
                }
                .boxed()
            })
            .on(Event::Error, move |p, _| {
                let tx = err_tx.clone();
                async move {
                    let _ = tx.send(format!("{p:?}"));
                }
                .boxed()
            })
            .on(vidsync_protocol::EV_PROJECT_PRESENCE, move |p, _| {
                let tx = presence_tx.clone();
                async move {
                    if let Payload::Text(values) = p {
                        for v in values {
                            let _ = tx.send(v);
                        }
                    }
                }
                .boxed()
            })
            .on(vidsync_protocol::EV_PROJECT_EVENT, move |p, _| {
                let tx = ev_tx.clone();
                async move {
                    if let Payload::Text(values) = p {
                        for v in values {
                            let _ = tx.send(v);
                        }
                    }
                }
                .boxed()
            });
        if let Some(auth) = auth {
            builder = builder.auth(auth);
        }
        let client = builder
            .connect()
            .await
            .map_err(|e| ConnectFailure::Other(e.into()))?;
        let mut live = Live {
            client,
            events,
            presence,
            connects,
        };
        tokio::select! {
            c = live.connects.recv() => match c {
                Some(()) => Ok(live),
                None => Err(ConnectFailure::Other(anyhow!("client closed"))),
            },
            e = errors.recv() => {
                let _ = live.client.disconnect().await;
                Err(ConnectFailure::Refused(e.unwrap_or_default()))
            }
            _ = tokio::time::sleep(DEADLINE) => Err(ConnectFailure::Other(anyhow!("no connect within {DEADLINE:?}"))),
        }
    }

    /// Emits `event` with `data` and waits for the acknowledgement (an
    /// error if none comes within the deadline: a lost request is a bug).
    pub async fn request(&self, event: &str, data: Value) -> Result<Value> {
        match self.request_once(event, data).await? {
            Some(ack) => Ok(ack),
            None => bail!("no ack to {event} within {DEADLINE:?}"),
        }
    }

    async fn request_once(&self, event: &str, data: Value) -> Result<Option<Value>> {
        let wait = DEADLINE;
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.client
            .emit_with_ack(event, data, wait, move |p: Payload, _| {
                let tx = tx.clone();
                async move {
                    // rust_socketio hands an ack's argument list over as one
                    // JSON array: `[ack]`.
                    if let Payload::Text(v) = p {
                        let _ = tx.send(unwrap_ack(v));
                    }
                }
                .boxed()
            })
            .await?;
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(ack)) => Ok(Some(ack)),
            Ok(None) => bail!("ack channel closed"),
            Err(_) => Ok(None),
        }
    }

    /// Emits `event` without asking for an acknowledgement.
    ///
    /// (Several requests with acks in flight at once are not safe with
    /// rust_socketio 0.6: it draws ack ids at random from 0..999 and, when
    /// two collide, calls both callbacks with one answer and then removes
    /// the wrong entries.)
    pub async fn emit(&self, event: &str, data: Value) -> Result<()> {
        Ok(self.client.emit(event, data).await?)
    }

    pub async fn subscribe(&self, project_id: &str, since_seq: Option<u64>) -> Result<Value> {
        let data = match since_seq {
            Some(s) => json!({ "project_id": project_id, "since_seq": s }),
            None => json!(project_id),
        };
        self.request(vidsync_protocol::EV_SUBSCRIBE, data).await
    }

    /// The next `project:event`, or an error after the deadline.
    pub async fn next_event(&mut self) -> Result<Value> {
        tokio::time::timeout(DEADLINE, self.events.recv())
            .await
            .context("no project:event within the deadline")?
            .ok_or_else(|| anyhow!("event channel closed"))
    }

    /// The next `project:presence`, or an error after the deadline.
    pub async fn next_presence(&mut self) -> Result<Value> {
        tokio::time::timeout(DEADLINE, self.presence.recv())
            .await
            .context("no project:presence within the deadline")?
            .ok_or_else(|| anyhow!("presence channel closed"))
    }

    /// Events received so far and not yet taken.
    pub fn drain(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(v) = self.events.try_recv() {
            out.push(v);
        }
        out
    }

    /// Waits for the next (re)connect.
    pub async fn next_connect(&mut self) -> Result<()> {
        tokio::time::timeout(DEADLINE, self.connects.recv())
            .await
            .context("no reconnect within the deadline")?
            .ok_or_else(|| anyhow!("client closed"))
    }
}

/// rust_socketio hands an ack's argument list over as one JSON array:
/// `[ack]`; this returns `ack`.
fn unwrap_ack(mut v: Vec<Value>) -> Value {
    let mut first = if v.len() == 1 {
        v.remove(0)
    } else {
        Value::Array(v)
    };
    if let Value::Array(args) = &mut first {
        if args.len() == 1 {
            first = args.remove(0);
        }
    }
    first
}

/// SIGTERM, then wait (up to DEADLINE) for the exit status.
async fn terminate(child: Option<Child>) -> Result<std::process::ExitStatus> {
    let mut child = child.ok_or_else(|| anyhow!("not running"))?;
    if let Some(pid) = child.id() {
        Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await?;
    }
    Ok(tokio::time::timeout(DEADLINE, child.wait())
        .await
        .context("did not stop on SIGTERM")??)
}

async fn kill9(child: Option<Child>) -> Result<()> {
    let mut child = child.ok_or_else(|| anyhow!("not running"))?;
    child.start_kill()?;
    child.wait().await?;
    Ok(())
}

/// Waits until `check` returns `Some`, polling every 20 ms, up to DEADLINE.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The clients' log filter: `warn`, or with `TEST_LOG=1` debug without
/// SQL; any other `TEST_LOG` value is used as the filter itself (e.g.
/// `TEST_LOG=sqlx=debug`).
fn client_log_filter() -> String {
    match std::env::var("TEST_LOG") {
        Err(_) => "warn".into(),
        Ok(v) if v == "1" => "debug,sqlx=warn".into(),
        Ok(v) => v,
    }
}

/// Quiet logs unless TEST_LOG is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,sqlx=warn")
            .try_init();
    }
}

/// One `vidsync` client installation: its own config dir and folder.
pub struct ClientDir {
    pub config: tempfile::TempDir,
    pub folder: PathBuf,
    _folder_root: tempfile::TempDir,
}

/// What a CLI command printed and how it ended.
#[derive(Debug)]
pub struct CmdOutput {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl ClientDir {
    pub fn new() -> Result<ClientDir> {
        let root = tempfile::tempdir()?;
        let folder = root.path().join("folder");
        std::fs::create_dir_all(&folder)?;
        Ok(ClientDir {
            config: tempfile::tempdir()?,
            folder,
            _folder_root: root,
        })
    }

    /// A client whose config dir (its `state.db`) lives under `parent`
    /// (a small filesystem, for disk-full tests); its folder elsewhere.
    pub fn with_config_in(parent: &Path) -> Result<ClientDir> {
        let root = tempfile::tempdir()?;
        let folder = root.path().join("folder");
        std::fs::create_dir_all(&folder)?;
        Ok(ClientDir {
            config: tempfile::tempdir_in(parent)?,
            folder,
            _folder_root: root,
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(client_bin());
        cmd.arg("--config-dir")
            .arg(self.config.path())
            .args(args)
            .stdin(Stdio::null());
        cmd.env("RUST_LOG", client_log_filter());
        cmd
    }

    /// A short name for this client in logs: its config directory's name.
    pub fn label(&self) -> String {
        self.config
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    }

    /// Runs a CLI command to completion.
    pub async fn cmd(&self, args: &[&str]) -> Result<CmdOutput> {
        // Generous: `join` downloads the whole project.
        let out = tokio::time::timeout(DEADLINE * 6, self.command(args).output())
            .await
            .context("vidsync command hung")??;
        Ok(CmdOutput {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        })
    }

    /// Runs a command that must succeed; returns its stdout, trimmed.
    pub async fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cmd(args).await?;
        if !out.ok {
            bail!("vidsync {args:?} failed: {}", out.stderr);
        }
        Ok(out.stdout.trim().to_string())
    }

    /// Starts `vidsync run --json` with extra flags; its engine events
    /// arrive as JSON values.
    pub fn run(&self, extra: &[&str]) -> Result<RunningClient> {
        self.run_env(extra, &[])
    }

    /// [`ClientDir::run`] with extra environment variables.
    pub fn run_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Result<RunningClient> {
        let logging = std::env::var_os("TEST_LOG").is_some();
        let stderr = if logging {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        self.spawn_run(extra, env, stderr)
    }

    /// [`ClientDir::run_env`], its log (at `filter`, unless `TEST_LOG` is
    /// set) appended to [`ClientDir::log_path`] across restarts, so a test
    /// that fails can show what the client did ([`ClientDir::log_tail`]).
    pub fn run_logged(
        &self,
        extra: &[&str],
        env: &[(&str, &str)],
        filter: &str,
    ) -> Result<RunningClient> {
        if std::env::var_os("TEST_LOG").is_some() {
            return self.run_env(extra, env);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut env = env.to_vec();
        env.push(("RUST_LOG", filter));
        self.spawn_run(extra, &env, Stdio::from(file))
    }

    /// Where [`ClientDir::run_logged`] keeps the client's log.
    pub fn log_path(&self) -> PathBuf {
        self.config.path().join("test-client.log")
    }

    /// The last `n` lines of the log [`ClientDir::run_logged`] kept.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn spawn_run(
        &self,
        extra: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Result<RunningClient> {
        let mut args = vec!["run", "--json"];
        args.extend_from_slice(extra);
        let mut cmd = self.command(&args);
        cmd.envs(env.iter().copied());
        cmd.stdout(Stdio::piped()).kill_on_drop(true);
        cmd.stderr(stderr);
        let mut child = cmd.spawn().context("spawning vidsync run")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        if let Some(stderr) = child.stderr.take() {
            // With TEST_LOG, each log line says which client wrote it.
            let label = self.label();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("[{label}] {line}");
                }
            });
        }
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Ok(RunningClient {
            child: Some(child),
            events,
            seen: Vec::new(),
        })
    }

    /// The `status.json` a running client keeps, if there is one yet.
    pub fn status_file(&self) -> Option<Value> {
        let bytes = std::fs::read(self.config.path().join("status.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let p = self.folder.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, bytes)?;
        Ok(())
    }
}

/// A running `vidsync run --json`.
pub struct RunningClient {
    child: Option<Child>,
    events: mpsc::UnboundedReceiver<Value>,
    /// Every engine event received so far, in order.
    pub seen: Vec<Value>,
}

impl RunningClient {
    /// Waits for an engine event matching `pred` (looking at the ones seen
    /// before too); returns it.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return Ok(v.clone());
        }
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(v)) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return Ok(v);
                    }
                }
                Ok(None) => bail!("client exited while waiting for {what}"),
                Err(_) => bail!(
                    "timed out waiting for {what}; seen: {:?}",
                    self.seen.iter().rev().take(5).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Waits for a status_changed event whose status matches.
    pub async fn wait_status(
        &mut self,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        self.wait_for(what, |v| {
            v["type"] == "status_changed" && pred(&v["status"])
        })
        .await
    }

    /// Every engine event received so far (the ones not waited for too).
    pub fn all_seen(&mut self) -> &[Value] {
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v);
        }
        &self.seen
    }

    /// Forgets the events seen so far (so later waits look only forward).
    pub fn forget(&mut self) {
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v);
        }
        self.seen.clear();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// SIGKILL: the crash case.
    pub async fn kill9(&mut self) -> Result<()> {
        kill9(self.child.take()).await
    }

    /// SIGTERM and wait; fails if it does not exit cleanly.
    pub async fn stop(&mut self) -> Result<()> {
        let status = terminate(self.child.take()).await?;
        if !status.success() {
            bail!("vidsync run exited with {status}");
        }
        Ok(())
    }
}

/// Two client installations on one project: A logged in as alice sharing
/// its folder, B logged in as bob and joined in `b_mode`. Returns A, B,
/// the project id and alice's API client.
pub async fn linked_pair(
    server: &TestServer,
    b_mode: &str,
) -> Result<(ClientDir, ClientDir, String, Api)> {
    linked_pair_of(server, ClientDir::new()?, ClientDir::new()?, b_mode).await
}

/// [`linked_pair`] for two given client dirs (e.g. one whose state lives
/// on a small filesystem).
pub async fn linked_pair_of(
    server: &TestServer,
    a: ClientDir,
    b: ClientDir,
    b_mode: &str,
) -> Result<(ClientDir, ClientDir, String, Api)> {
    link(server, a, b, [&server.url, &server.url], b_mode).await
}

/// [`linked_pair`] with A and B signed in at the given URLs (e.g. one or
/// both through a proxy to `server`).
pub async fn linked_pair_at(
    server: &TestServer,
    a_url: &str,
    b_url: &str,
    b_mode: &str,
) -> Result<(ClientDir, ClientDir, String, Api)> {
    link(
        server,
        ClientDir::new()?,
        ClientDir::new()?,
        [a_url, b_url],
        b_mode,
    )
    .await
}

async fn link(
    server: &TestServer,
    a: ClientDir,
    b: ClientDir,
    [a_url, b_url]: [&str; 2],
    b_mode: &str,
) -> Result<(ClientDir, ClientDir, String, Api)> {
    let ta = server.add_user("alice").await?;
    let tb = server.add_user("bob").await?;
    a.ok(&["login", "--server", a_url, "--token", &ta]).await?;
    b.ok(&["login", "--server", b_url, "--token", &tb]).await?;
    let folder = a.folder.to_string_lossy().to_string();
    let id = a.ok(&["share", &folder, "--name", "proj"]).await?;
    let code = a.ok(&["invite", &id]).await?;
    let bfolder = b.folder.to_string_lossy().to_string();
    b.ok(&["join", &code, &bfolder, "--mode", b_mode]).await?;
    Ok((a, b, id, server.api(&ta)))
}

/// Peak resident set (VmHWM) of a live process, in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// What a user sees of a synced folder: `tree` without the client's own
/// in-progress temp files.
pub fn visible(
    tree: std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    tree.into_iter()
        .filter(|(p, _)| {
            !p.rsplit('/')
                .next()
                .unwrap_or("")
                .starts_with(vidsync_client::scan::TEMP_PREFIX)
        })
        .collect()
}

/// Every file below `root` (relative path -> BLAKE3 hex), skipping `skip`.
pub fn tree_hashes(root: &Path) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            let rel = p.strip_prefix(root)?.to_string_lossy().replace('\\', "/");
            if p.is_dir() {
                stack.push(p);
            } else {
                let mut h = blake3::Hasher::new();
                h.update_reader(std::fs::File::open(&p)?)?;
                out.insert(rel, h.finalize().to_hex().to_string());
            }
        }
    }
    Ok(out)
}
