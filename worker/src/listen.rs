//! Connection hygiene for both listeners (probes and metrics on
//! `http.bind`, the API and screens on `api.bind`).
//!
//! `axum::serve` keeps a connection open as long as its client likes: a
//! client trickling its headers a byte every few seconds, or holding idle
//! keep-alive connections, ties up a task and a socket each, without limit.
//! Here each connection is served by hyper directly with:
//!
//! - a **header-read timeout**: the whole request head must arrive within
//!   it, or the connection is closed. hyper starts this clock whenever it
//!   waits for a request head, so it is also the **idle keep-alive
//!   timeout**: a connection with no next request within it is closed.
//! - a **cap on concurrent connections**: past it, new connections wait in
//!   the kernel's accept queue until one closes, so a flood of sockets costs
//!   no task and no memory here.
//! - the client's address on every request ([`ClientAddr`]), for the
//!   per-address rate limits.
//!
//! Bodies are the routes' business: the file routes require a minimum rate
//! (`web::spool`), and every other route has its request deadline.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The peer address of the connection a request came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// How long a connection may take to send a request head, or stay idle
/// between requests, and how many may be open at once.
#[derive(Debug, Clone, Copy)]
pub struct Hygiene {
    /// The header-read and idle keep-alive timeout.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Hygiene {
    fn default() -> Self {
        Hygiene {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` until `stop` fires, then lets open
/// connections finish their requests and returns once they have closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    hygiene: Hygiene,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(hygiene.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(hygiene.header_timeout)
        .keep_alive(true);
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little
                    // rather than spin, as hyper's own server does.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let client = ClientAddr(peer.ip().to_canonical());
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                use tower::ServiceExt;
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(client);
                router.clone().oneshot(req)
            });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    // Every slot back: every connection has closed.
    let _all = slots
        .acquire_many(hygiene.max_connections.max(1) as u32)
        .await;
    Ok(())
}
