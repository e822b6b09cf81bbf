//! TLS built in (issue 12): the server with `--tls-cert` / `--tls-key` made
//! from a private CA generated here; clients that trust that CA
//! (`vidsync login --ca-file`) sync a file live over https + wss, and one
//! that does not gets an error saying what to do. Plain HTTP on a
//! non-loopback address logs a warning.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use vidsync_e2e::{server_bin, wait_for, ClientDir, TestServer, DEADLINE};

/// `ca.pem`, and `cert.pem` + `key.pem` for localhost and 127.0.0.1 signed by it.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn make() -> Result<Pki> {
        let dir = tempfile::tempdir()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Vidsync test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let mut leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf_key = KeyPair::generate()?;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem())?;
        std::fs::write(dir.path().join("cert.pem"), leaf_cert.pem())?;
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem())?;
        Ok(Pki { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    async fn server(&self) -> Result<TestServer> {
        TestServer::start_with(&[
            "--tls-cert",
            &self.arg("cert.pem"),
            "--tls-key",
            &self.arg("key.pem"),
        ])
        .await
    }
}

fn remote_path(v: &Value, path: &str) -> bool {
    v["type"] == "remote_event" && v["event"]["change"]["path"] == path
}

/// An HTTP client trusting `ca.pem` (and nothing else of the test's).
fn https_client(ca: &Path) -> Result<reqwest::Client> {
    let pem = std::fs::read(ca)?;
    let tls = native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(&pem)?)
        .build()?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()?)
}

#[tokio::test]
async fn clients_trusting_the_ca_sync_live_over_https_and_wss() -> Result<()> {
    let pki = Pki::make()?;
    let server = pki.server().await?;
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    // HTTP and the Engine.IO polling handshake answer over TLS.
    let http = https_client(&pki.path("ca.pem"))?;
    let health: Value = http
        .get(format!("{}/health", server.url))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(health["status"], "ok");
    let poll = http
        .get(format!("{}/socket.io/?EIO=4&transport=polling", server.url))
        .send()
        .await?;
    assert_eq!(poll.status(), 200);
    let open = poll.text().await?;
    assert!(open.starts_with("0{") && open.contains("\"sid\""), "{open}");

    let ta = server.add_user("alice").await?;
    let tb = server.add_user("bob").await?;
    let (a, b) = (ClientDir::new()?, ClientDir::new()?);
    let ca = pki.arg("ca.pem");
    a.ok(&[
        "login",
        "--server",
        &server.url,
        "--token",
        &ta,
        "--ca-file",
        &ca,
    ])
    .await?;
    b.ok(&[
        "login",
        "--server",
        &server.url,
        "--token",
        &tb,
        "--ca-file",
        &ca,
    ])
    .await?;
    let id = a
        .ok(&["share", &a.folder.to_string_lossy(), "--name", "tls"])
        .await?;
    let code = a.ok(&["invite", &id]).await?;
    b.ok(&[
        "join",
        &code,
        &b.folder.to_string_lossy(),
        "--mode",
        "receive",
    ])
    .await?;

    // A on the default transport (Engine.IO polling, upgraded to a
    // websocket), B on the websocket alone: wss.
    let mut ra = a.run(&[])?;
    let mut rb = b.run(&["--transport", "websocket-only"])?;
    ra.wait_status("A live", |s| s["connection"] == "live")
        .await?;
    rb.wait_status("B live over wss", |s| s["connection"] == "live")
        .await?;

    a.write("over-tls.txt", b"sent through TLS")?;
    let ev = rb
        .wait_for("over-tls.txt at B", |v| remote_path(v, "over-tls.txt"))
        .await?;
    assert_eq!(ev["event"]["origin"]["user"], "alice");
    let at_b = b.folder.join("over-tls.txt");
    wait_for("over-tls.txt written at B", || {
        let bytes = std::fs::read(&at_b).ok();
        async move { bytes.filter(|b| b == b"sent through TLS") }
    })
    .await?;
    // B heard it on the socket: once live (it polls the log until the socket
    // is up), it never fell back to polling.
    fn conn(v: &Value) -> Option<&str> {
        (v["type"] == "status_changed").then(|| v["status"]["connection"].as_str().unwrap_or(""))
    }
    let after_live: Vec<&str> = rb
        .seen
        .iter()
        .filter_map(conn)
        .skip_while(|c| *c != "live")
        .collect();
    assert!(
        !after_live.is_empty() && after_live.iter().all(|c| *c == "live"),
        "B's connection after it went live: {after_live:?}"
    );
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_client_without_the_ca_is_told_why_and_what_to_do() -> Result<()> {
    let pki = Pki::make()?;
    let server = pki.server().await?;
    let token = server.add_user("carol").await?;
    let c = ClientDir::new()?;
    let out = c
        .cmd(&["login", "--server", &server.url, "--token", &token])
        .await?;
    assert!(!out.ok, "login without the CA succeeded: {}", out.stdout);
    let err = out.stderr.to_lowercase();
    assert!(err.contains("certificate"), "{}", out.stderr);
    assert!(out.stderr.contains("--ca-file"), "{}", out.stderr);
    // Nothing was saved: the next command still says to log in.
    let status = c.cmd(&["share", &c.folder.to_string_lossy()]).await?;
    assert!(!status.ok);
    assert!(status.stderr.contains("login"), "{}", status.stderr);

    // A CA file that is not a certificate is refused by name.
    let bogus = pki.path("key.pem");
    let out = c
        .cmd(&[
            "login",
            "--server",
            &server.url,
            "--token",
            &token,
            "--ca-file",
            &bogus.to_string_lossy(),
        ])
        .await?;
    assert!(!out.ok);
    assert!(out.stderr.contains("key.pem"), "{}", out.stderr);
    Ok(())
}

#[tokio::test]
async fn plain_http_on_a_non_loopback_address_logs_a_warning() -> Result<()> {
    let data = tempfile::tempdir()?;
    let mut child = tokio::process::Command::new(server_bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawning vidsync-server")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let warning = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("WARN") && line.contains("plain HTTP") {
                return Ok(line);
            }
        }
        bail!("server exited without the warning")
    })
    .await
    .context("no plain-HTTP warning")??;
    assert!(warning.contains("--tls-cert"), "{warning}");
    child.kill().await?;
    Ok(())
}
