//! The accept loop: connections (plain or TLS) served by hyper with a
//! header deadline, until the shutdown future resolves; then sockets are
//! closed, in-flight requests get a grace period, and the store closes.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::{app, live, tls, AppState, ServeError};

/// Serves `state` (see [`open_state`]) over plain HTTP until `shutdown`
/// resolves, then stops accepting, closes every socket with a normal close,
/// lets in-flight requests finish (up to `grace`) and closes the store.
///
/// Connections are served by hyper directly (not `axum::serve`) so that
/// request headers have a deadline (`Config::header_timeout`), which also
/// closes idle keep-alive connections.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    run(listener, state, None, shutdown).await
}

/// [`serve`] over TLS: every connection is a TLS handshake first (under the
/// header deadline), then HTTPS, wss and Socket.IO polling as in plain HTTP.
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    tls: tls::TlsAcceptor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    run(listener, state, Some(tls), shutdown).await
}

async fn run(
    listener: TcpListener,
    state: AppState,
    tls: Option<tls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (router, io) = app(state.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let watcher = tokio::spawn(live::revocations::watch(
        state.clone(),
        state.database_url.clone(),
        stopped(stop_rx.clone()),
    ));
    // The first collection waits a whole interval: claims made before a
    // restart are not remembered, and by then they are past their grace.
    let collector = state.retention.interval.map(|interval| {
        let state = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(interval.max(state.retention.grace)).await;
            crate::retention::run(state, interval).await
        })
    });
    let connections = tokio_util::task::TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(state.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => r,
        };
        let tcp = match tcp {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors and the like: let some close first.
                tracing::warn!(%e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // No Nagle: a response's head and body go out at once, not 40 ms apart.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%e, "TCP_NODELAY");
        }
        let (http, router) = (http.clone(), router.clone());
        let stop = stopped(stop_rx.clone());
        let Some(tls) = tls.clone() else {
            connections.spawn(serve_connection(http, tcp, router, stop));
            continue;
        };
        let handshake_deadline = state.header_timeout;
        connections.spawn(async move {
            let handshake = tokio::time::timeout(handshake_deadline, tls.accept(tcp));
            tokio::pin!(stop);
            let stream = tokio::select! {
                r = handshake => r,
                _ = &mut stop => return,
            };
            match stream {
                Ok(Ok(stream)) => serve_connection(http, stream, router, stop).await,
                Ok(Err(e)) => tracing::debug!(%e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: closing sockets, finishing requests");
    let _ = stop_tx.send(true);
    io.close().await;
    connections.close();
    // Requests still running this long after shutdown began are cut off.
    let grace = Duration::from_secs(10);
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after {grace:?}; stopping anyway");
    }
    let _ = watcher.await;
    if let Some(c) = collector {
        c.abort();
    }
    state.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// One connection (plain or TLS) until it ends or `stop`, then gracefully.
async fn serve_connection<IO>(
    http: hyper::server::conn::http1::Builder,
    io: IO,
    router: Router,
    stop: impl Future<Output = ()>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = http
        .serve_connection(
            hyper_util::rt::TokioIo::new(io),
            hyper_util::service::TowerToHyperService::new(router),
        )
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return log_conn_end(r),
        _ = stop => conn.as_mut().graceful_shutdown(),
    }
    log_conn_end(conn.await);
}

fn log_conn_end(r: Result<(), hyper::Error>) {
    if let Err(e) = r {
        tracing::debug!(%e, "connection ended with an error");
    }
}
