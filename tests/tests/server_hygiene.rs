//! Server hygiene against the real binary: no token in its log at any
//! level, and connections that never finish their headers (or sit idle
//! after a response) are closed.

use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use vidsync_e2e::{server_bin, wait_for, Live, TestServer, DEADLINE};

/// RUST_LOG=trace, a socket connected with the token over both transports,
/// an API call with it: the token never shows up on stderr.
#[tokio::test]
async fn the_token_never_appears_in_the_log_even_at_trace() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let add = Command::new(server_bin())
        .args(["user", "add", "alice", "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "trace")
        .output()
        .await?;
    anyhow::ensure!(add.status.success(), "user add failed");
    let token = String::from_utf8(add.stdout)?.trim().to_string();
    let mut child = Command::new(server_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut stderr = child.stderr.take().expect("stderr");
    let log = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all).await;
        all
    });
    let mut line = String::new();
    tokio::time::timeout(
        DEADLINE,
        tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut line),
    )
    .await??;
    let url = line
        .trim()
        .strip_prefix("vidsync-server listening on ")
        .ok_or_else(|| anyhow::anyhow!("unexpected first line {line:?}"))?
        .to_string();

    for transport in [
        rust_socketio::TransportType::Websocket,
        rust_socketio::TransportType::Polling,
    ] {
        let live = Live::connect_with(&url, Some(json!({ "token": token })), transport)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        live.request("subscribe:project", json!("p_none")).await?;
        live.client.disconnect().await?;
    }
    let reply = reqwest::Client::new()
        .get(format!("{url}/api/projects"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(reply.status(), 200);

    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().expect("pid").to_string())
        .status()
        .await?;
    tokio::time::timeout(DEADLINE, child.wait()).await??;
    let log = String::from_utf8_lossy(&log.await?).to_string();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the log is not verbose"
    );
    // The token, and its random part on its own.
    let secret = token.trim_start_matches("vst_");
    assert!(
        !log.contains(secret),
        "the token appears in the log ({} bytes of log)",
        log.len()
    );
    Ok(())
}

/// Waits until the server closes `conn` (EOF or reset).
async fn closed_by_server(conn: &mut TcpStream) -> anyhow::Result<()> {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(DEADLINE, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("connection still open after {DEADLINE:?}"))
}

#[tokio::test]
async fn slow_headers_and_idle_keep_alive_connections_are_closed() -> anyhow::Result<()> {
    let server = TestServer::start_with(&["--header-timeout", "1"]).await?;
    let addr = format!("127.0.0.1:{}", server.port);
    // 300 connections that start a request and never finish its headers.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut c = TcpStream::connect(&addr).await?;
        c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await?;
        slow.push(c);
    }
    // One that sends a whole request, reads the answer and then idles.
    let mut idle = TcpStream::connect(&addr).await?;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await?;
    assert_eq!(&head, b"HTTP/1.1 200");

    for c in &mut slow {
        closed_by_server(c).await?;
    }
    closed_by_server(&mut idle).await?;
    // The server still serves.
    wait_for("a fresh request to be answered", || async {
        reqwest::get(format!("{}/health", server.url))
            .await
            .ok()
            .filter(|r| r.status() == 200)
    })
    .await?;
    // A socket stays open past the header timeout (pings keep it alive,
    // and its upgraded connection has no header deadline any more).
    let token = server.add_user("alice").await?;
    let live = Live::connect(&server.url, &token).await?;
    // A slow-header connection opened after the socket and closed by the
    // server proves the header timeout has passed for the socket too.
    let mut witness = TcpStream::connect(&addr).await?;
    witness
        .write_all(b"GET /health HTTP/1.1\r\nX-Slow: ")
        .await?;
    closed_by_server(&mut witness).await?;
    live.request("subscribe:project", json!("p_none")).await?;
    Ok(())
}
