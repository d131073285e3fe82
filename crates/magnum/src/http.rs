//! The API's HTTP/1.1 server: an accept loop that serves a bounded number
//! of connections, each guarded against idle and slow clients.
//!
//! - **Connections** (`[api] max_connections`): the loop takes a permit
//!   before it accepts, so while that many connections are open it accepts
//!   no more. Further clients wait in the kernel's listen backlog (their
//!   TCP connection is made, their request is read once a connection
//!   closes); no task or buffer is spent on them.
//! - **Headers** (`[api] header_read_timeout`): a new connection has that
//!   long to send its first request's headers, and every later request has
//!   that long from its first byte to the end of its headers (slowloris).
//! - **Idle** (`[api] keepalive_timeout`): a kept-alive connection may wait
//!   that long for its next request, and a client may take that long
//!   between reads of an answer; then the connection is closed.
//! - **Body** (`[api] body_read_timeout`): bounded where the body is read,
//!   by the API's body reader (`magnum_api::request::JsonBody`), which
//!   answers 408 and closes the connection.
//! - TLS handshakes run in the connection's own task, within 10 s.
//!
//! On SIGINT/SIGTERM the loop stops accepting; requests in flight are
//! answered, idle connections are closed, and serving ends when the last
//! connection has.

use magnum_core::config::opts;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use magnum_api::App;
use magnum_core::config::Config;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The bounds on clients, from `[api]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `header_read_timeout`.
    pub header_read: Duration,
    /// `keepalive_timeout`.
    pub keepalive: Duration,
    /// `max_connections`.
    pub max_connections: usize,
}

impl Limits {
    pub fn from_conf(conf: &Config) -> Limits {
        let secs = |name: &str, default: i64| {
            Duration::from_secs(conf.int("api", name).unwrap_or(default).max(1) as u64)
        };
        Limits {
            header_read: secs("header_read_timeout", 20),
            keepalive: secs("keepalive_timeout", 60),
            max_connections: conf
                .get(opts::api::MAX_CONNECTIONS)
                .unwrap_or(1000)
                .clamp(1, i64::from(u32::MAX >> 3)) as usize,
        }
    }
}

/// Serve `app` on `tcp` (over TLS with `tls`) until `shutdown` completes,
/// then wait for the open connections to finish.
pub async fn serve(
    tcp: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: App,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(acceptor) = acceptor else {
                return connection(stream, app, limits, stop).await;
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => connection(tls, app, limits, stop).await,
                Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
            }
        });
    }
    // Clients still in the backlog are refused from here on.
    drop(tcp);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends.
    let _ = permits.acquire_many(limits.max_connections as u32).await;
}

/// After a failed accept: errors of the one connection are nothing to
/// wait for; others (out of file descriptors, say) are, or the loop spins.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!("accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serve one connection until it ends, shutting it down gracefully when
/// `stop` turns true.
async fn connection<IO>(io: IO, app: App, limits: Limits, mut stop: watch::Receiver<bool>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(tower::ServiceExt::map_request(
        app,
        body as fn(hyper::Request<Incoming>) -> axum::extract::Request,
    ));
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Hyper's own header timer runs from the end of one answer to the end
    // of the next request's headers: a backstop, well beyond the guard's
    // idle and header times together.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(2 * (limits.keepalive + limits.header_read));
    let conn = builder.serve_connection(TokioIo::new(Guard::new(io, limits)), service);
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => return ended(done),
        _ = stop.wait_for(|stop| *stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    ended(conn.await);
}

fn body(request: hyper::Request<Incoming>) -> axum::extract::Request {
    request.map(axum::body::Body::new)
}

fn ended(done: Result<(), hyper::Error>) {
    if let Err(e) = done {
        tracing::debug!("connection closed: {e}");
    }
}

/// Where a connection is in its exchange, as its bytes show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing of the next request yet: a new connection (until the header
    /// time runs out) or one kept alive after an answer (until the idle
    /// time does; every write of the answer starts it again).
    Waiting,
    /// In a request's head since its first byte, until the header time
    /// runs out: `newlines` line ends in a row so far (CRs aside), after
    /// `text` (empty lines before a request line do not end a head).
    Head { newlines: u8, text: bool },
    /// The head is in: the body (bounded where it is read) and the handler
    /// (not bounded here).
    Busy,
}

/// A connection's stream with the header and idle deadlines of
/// [`Phase`]: once one passes while the server waits on the client, reads
/// and writes fail with `TimedOut` and the server closes the connection.
///
/// Pipelined requests (a second request sent before the first is answered)
/// are served, but the second one's handler then counts as idle time.
struct Guard<IO> {
    io: IO,
    phase: Phase,
    header: Duration,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<IO> Guard<IO> {
    fn new(io: IO, limits: Limits) -> Self {
        Guard {
            io,
            phase: Phase::Waiting,
            header: limits.header_read,
            idle: limits.keepalive,
            deadline: Box::pin(tokio::time::sleep(limits.header_read)),
        }
    }

    fn arm(&mut self, after: Duration) {
        self.deadline.as_mut().reset(Instant::now() + after);
    }

    /// Follow the request's head through bytes just read.
    fn read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.phase == Phase::Waiting {
            self.phase = Phase::Head {
                newlines: 0,
                text: false,
            };
            self.arm(self.header);
        }
        let Phase::Head {
            mut newlines,
            mut text,
        } = self.phase
        else {
            return;
        };
        for &b in bytes {
            match b {
                b'\n' if text => {
                    newlines += 1;
                    if newlines == 2 {
                        self.phase = Phase::Busy;
                        return;
                    }
                }
                b'\r' | b'\n' => {}
                _ => {
                    text = true;
                    newlines = 0;
                }
            }
        }
        self.phase = Phase::Head { newlines, text };
    }

    /// An answer is being written: the connection idles from here.
    fn wrote(&mut self, first: &[u8]) {
        // An interim answer (100 Continue) comes before the body is read.
        if self.phase == Phase::Busy && first.starts_with(b"HTTP/1.1 1") {
            return;
        }
        self.phase = Phase::Waiting;
        self.arm(self.idle);
    }

    /// Whether the deadline of the current phase has passed (registering
    /// for a wake-up when it does, if not).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.phase != Phase::Busy && self.deadline.as_mut().poll(cx).is_ready()
    }

    fn timed_out(&self) -> io::Error {
        let what = match self.phase {
            Phase::Head { .. } => "request headers",
            _ => "next request",
        };
        io::Error::new(io::ErrorKind::TimedOut, format!("no {what} in time"))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(this.timed_out())),
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.wrote(buf);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(this.timed_out())),
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    let first = bufs.iter().find(|b| !b.is_empty()).map(|b| &b[..]);
                    this.wrote(first.unwrap_or_default());
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(this.timed_out())),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(this.timed_out())),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn guard() -> Guard<()> {
        Guard {
            io: (),
            phase: Phase::Waiting,
            header: Duration::from_secs(1),
            idle: Duration::from_secs(2),
            deadline: Box::pin(tokio::time::sleep(Duration::from_secs(1))),
        }
    }

    #[tokio::test]
    async fn a_head_ends_at_its_empty_line() {
        let mut g = guard();
        g.read(b"\r\n");
        assert!(matches!(g.phase, Phase::Head { text: false, .. }));
        g.read(b"GET / HTTP/1.1\r\nHost: a\r");
        assert!(matches!(g.phase, Phase::Head { text: true, .. }));
        g.read(b"\n\r");
        assert!(matches!(g.phase, Phase::Head { newlines: 1, .. }));
        g.read(b"\n{\"body\": 1}");
        assert_eq!(g.phase, Phase::Busy);
        // Bare LFs end a head too, as hyper's parser accepts them.
        let mut g = guard();
        g.read(b"GET / HTTP/1.1\nHost: a\n\n");
        assert_eq!(g.phase, Phase::Busy);
    }

    #[tokio::test]
    async fn answers_start_the_idle_time_but_interim_ones_do_not() {
        let mut g = guard();
        g.read(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
        g.wrote(b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(g.phase, Phase::Busy);
        g.wrote(b"HTTP/1.1 201 Created\r\n");
        assert_eq!(g.phase, Phase::Waiting);
        g.read(b"G");
        assert!(matches!(g.phase, Phase::Head { .. }));
    }
}
