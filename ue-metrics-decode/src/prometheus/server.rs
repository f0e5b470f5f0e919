//! The `/metrics` HTTP endpoint (a `tiny_http` server on its own thread).

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::render::{render, render_forward_telemetry, render_self_telemetry, CONTENT_TYPE};
use super::state::{PrometheusCounts, PrometheusOptions, PrometheusState};
use crate::forward::ForwardStats;
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::DecodeStats;

#[derive(Debug)]
struct Shared {
    state: PrometheusState,
    source: DecodeStats,
    forward: Option<ForwardStats>,
    next_expiry: Instant,
    /// The input has ended ([`PrometheusEndpoint::input_ended`]): no expiry any more.
    input_ended: bool,
    /// Times the endpoint listened again after its accept loop ended on an error.
    restarts: u64,
}

/// The server, replaced when it stops accepting (see [`serve`]).
struct Listener {
    server: Mutex<Arc<tiny_http::Server>>,
    /// Set before the server is unblocked for good.
    stopping: AtomicBool,
    addr: SocketAddr,
}

/// Serves the series of a [`PrometheusState`] at `http://ADDR/metrics` while requests are
/// added to it. Dropping it (or [`stop`](Self::stop)) shuts the server down.
pub struct PrometheusEndpoint {
    shared: Arc<Mutex<Shared>>,
    listener: Arc<Listener>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
    expiry_every: Duration,
}

impl std::fmt::Debug for PrometheusEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusEndpoint")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn lock<T>(shared: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the state half-updated in a way that matters
    // more than losing the endpoint: keep serving.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PrometheusEndpoint {
    /// Listens on `addr` (`127.0.0.1:9464`, `[::]:9464`, `:9464` for every address) and serves
    /// from a background thread.
    pub fn start(addr: &str, options: PrometheusOptions) -> io::Result<PrometheusEndpoint> {
        let addr = match addr.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => addr.to_owned(),
        };
        let server = tiny_http::Server::http(&addr)
            .map_err(|e| io::Error::other(format!("cannot listen on {addr}: {e}")))?;
        let local = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other(format!("{addr} is not an IP address")))?;
        // Expire often enough that a series lives at most ~1.25x the configured time.
        let expiry_every = (options.expire_after / 4).max(Duration::from_millis(100));
        let shared = Arc::new(Mutex::new(Shared {
            state: PrometheusState::new(options),
            source: DecodeStats::default(),
            forward: None,
            next_expiry: Instant::now() + expiry_every,
            input_ended: false,
            restarts: 0,
        }));
        let listener = Arc::new(Listener {
            server: Mutex::new(Arc::new(server)),
            stopping: AtomicBool::new(false),
            addr: local,
        });
        let thread = {
            let listener = Arc::clone(&listener);
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("prometheus".into())
                .spawn(move || serve(&listener, &shared))?
        };
        Ok(PrometheusEndpoint {
            shared,
            listener,
            thread: Some(thread),
            addr: local,
            expiry_every,
        })
    }

    /// The address the server listens on (with the port chosen when it was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds the points of `request` (see [`PrometheusState::add_request`]). Returns the points
    /// dropped so far because [`PrometheusOptions::max_series`] series were held (see
    /// [`DropReason::SeriesLimit`](super::DropReason::SeriesLimit)), read under the same lock,
    /// for a warning when it moves.
    pub fn add(&self, request: &ExportMetricsServiceRequest) -> u64 {
        let now = Instant::now();
        let mut shared = lock(&self.shared);
        shared.state.add_request(request, now);
        if now >= shared.next_expiry && !shared.input_ended {
            shared.state.expire(now);
            shared.next_expiry = now + self.expiry_every;
        }
        shared
            .state
            .counts()
            .dropped(super::DropReason::SeriesLimit)
    }

    /// The input has ended (a file read to its end): from now on every series is served
    /// until the endpoint stops. Expiry is there so that memory follows the live series of a
    /// running source; after the end of the input nothing is added, and an expiry would only
    /// empty the endpoint.
    pub fn input_ended(&self) {
        lock(&self.shared).input_ended = true;
    }

    /// The source's counts, shown as `ue_metrics_decode_records_*`.
    pub fn set_source_stats(&self, stats: &DecodeStats) {
        let mut shared = lock(&self.shared);
        if shared.source != *stats {
            shared.source.clone_from(stats);
        }
    }

    /// The forwarder's counts, shown as `ue_metrics_decode_forward_*`.
    pub fn set_forward_stats(&self, stats: ForwardStats) {
        lock(&self.shared).forward = Some(stats);
    }

    /// Series held now and the conversion's counts (for the final summary).
    pub fn counts(&self) -> (usize, PrometheusCounts) {
        let shared = lock(&self.shared);
        (shared.state.series(), shared.state.counts().clone())
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.listener.stopping.store(true, Ordering::Release);
        // Under the lock: a server put in place after this is never waited on (`serve` checks
        // `stopping` before it uses one).
        lock(&self.listener.server).unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PrometheusEndpoint {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How long to wait before listening again when it failed (descriptors still exhausted).
const RELISTEN_EVERY: Duration = Duration::from_millis(200);

/// How long the endpoint may be idle before it checks that it still accepts connections.
const CHECK_ACCEPTING_EVERY: Duration = Duration::from_secs(1);

/// The next request; `None` once stopping.
///
/// tiny_http's accept loop ends for good at the first accept error (EMFILE when the process is
/// out of file descriptors; Linux also passes a new connection's network errors to `accept`)
/// or when it cannot duplicate a connection's descriptor (it panics), and the port closes with
/// it: scraping would be over for the rest of the run while the agent goes on reading. The
/// first case is reported by `recv`; the second is not, so an idle endpoint checks that its
/// port still takes connections. Either way it listens again on the same address.
fn next_request(listener: &Listener, shared: &Mutex<Shared>) -> Option<tiny_http::Request> {
    loop {
        let server = {
            let server = lock(&listener.server);
            if listener.stopping.load(Ordering::Acquire) {
                return None;
            }
            Arc::clone(&server)
        };
        match server.recv_timeout(CHECK_ACCEPTING_EVERY) {
            Ok(Some(request)) => return Some(request),
            // Idle (or unblocked to stop: checked above).
            Ok(None) if accepting(listener.addr) => continue,
            Ok(None) | Err(_) => {}
        }
        drop(server);
        loop {
            if listener.stopping.load(Ordering::Acquire) {
                return None;
            }
            if let Ok(server) = tiny_http::Server::http(listener.addr) {
                *lock(&listener.server) = Arc::new(server);
                lock(shared).restarts += 1;
                break;
            }
            std::thread::sleep(RELISTEN_EVERY);
        }
    }
}

/// Whether something accepts connections at `addr` (a refused connection says the port is
/// closed; any other failure, such as running out of descriptors here, says nothing).
fn accepting(addr: SocketAddr) -> bool {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    match std::net::TcpStream::connect_timeout(&target, Duration::from_millis(500)) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::ConnectionRefused,
    }
}

/// Most scrape answers being sent at once (two Prometheus servers of an HA pair, a person
/// with curl, one to spare); more scrapes get 503 until one is done. Each holds a thread and,
/// while a client is slow, the body it sends: at most this many bodies in memory.
const MAX_SENDING: usize = 4;

/// A rendered exposition, shared by the threads sending it.
struct Body(Arc<String>);

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

fn serve(listener: &Listener, shared: &Mutex<Shared>) {
    // Reused from scrape to scrape once no thread sends it any more: a scrape of 100,000
    // series is about 60 MB, which a fresh buffer per scrape spends page faults on.
    let mut body = Arc::new(String::new());
    let sending = Arc::new(AtomicUsize::new(0));
    while let Some(request) = next_request(listener, shared) {
        let path = request.url().split('?').next().unwrap_or("").to_owned();
        let method = request.method().clone();
        let response = match (path.as_str(), &method) {
            ("/metrics", tiny_http::Method::Get | tiny_http::Method::Head) => {
                if sending.load(Ordering::Acquire) >= MAX_SENDING {
                    let _ = request.respond(text_response(
                        503,
                        "text/plain; charset=utf-8",
                        b"too many scrapes being answered; try again\n",
                    ));
                    continue;
                }
                if Arc::strong_count(&body) > 1 {
                    // A slow client still reads the last one.
                    body = Arc::new(String::new());
                }
                let text = Arc::make_mut(&mut body);
                text.clear();
                {
                    let mut shared = lock(shared);
                    if !shared.input_ended {
                        shared.state.expire(Instant::now());
                    }
                    render(&shared.state, text);
                    render_self_telemetry(&shared.state, &shared.source, text);
                    if let Some(forward) = &shared.forward {
                        render_forward_telemetry(forward, text);
                    }
                    let name = "ue_metrics_decode_endpoint_restarts_total";
                    let _ = writeln!(
                        text,
                        "# HELP {name} Times this endpoint listened again after it stopped accepting connections\n# TYPE {name} counter\n{name} {}",
                        shared.restarts
                    );
                }
                send_in_background(request, Body(Arc::clone(&body)), &sending);
                continue;
            }
            ("/", tiny_http::Method::Get | tiny_http::Method::Head) => text_response(
                200,
                "text/plain; charset=utf-8",
                b"ue-metrics-decode: Prometheus metrics at /metrics\n",
            ),
            (_, tiny_http::Method::Get | tiny_http::Method::Head) => text_response(
                404,
                "text/plain; charset=utf-8",
                b"not found: try /metrics\n",
            ),
            _ => text_response(405, "text/plain; charset=utf-8", b"only GET and HEAD\n"),
        };
        // A client that went away is no reason to stop serving.
        let _ = request.respond(response);
    }
}

/// Sends a scrape's answer from a thread of its own: a client that stops reading (a stuck
/// scraper, `curl | less`) blocks only that thread, not the other scrapes. The body is read
/// where it is (no copy).
fn send_in_background(request: tiny_http::Request, body: Body, sending: &Arc<AtomicUsize>) {
    let len = body.as_ref().len();
    let response = response(200, CONTENT_TYPE, io::Cursor::new(body), len);
    sending.fetch_add(1, Ordering::AcqRel);
    let done = Arc::clone(sending);
    let spawned = std::thread::Builder::new()
        .name("prometheus-send".into())
        .spawn(move || {
            // A client that went away is no reason to stop serving.
            let _ = request.respond(response);
            done.fetch_sub(1, Ordering::AcqRel);
        });
    if spawned.is_err() {
        // No thread to be had: the request went with the closure (its client sees the
        // connection close, as for a 503) and nothing is being sent.
        sending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response that reads `body` where it is.
fn text_response<'a>(
    status: u16,
    content_type: &str,
    body: &'a [u8],
) -> tiny_http::Response<&'a [u8]> {
    response(status, content_type, body, body.len())
}

/// A response of `len` bytes read from `body`.
fn response<R: io::Read>(
    status: u16,
    content_type: &str,
    body: R,
    len: usize,
) -> tiny_http::Response<R> {
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
        .expect("a valid header");
    tiny_http::Response::new(
        tiny_http::StatusCode(status),
        vec![header],
        body,
        Some(len),
        None,
    )
}
