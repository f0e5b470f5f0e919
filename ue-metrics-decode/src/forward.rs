//! OTLP/HTTP forwarding: `POST {endpoint}/v1/metrics` with `Content-Type:
//! application/x-protobuf` (optionally `Content-Encoding: gzip`), from a bounded queue drained by
//! one background thread.
//!
//! - **Backpressure.** With [`Backpressure::Wait`] (files, pipes) [`Forwarder::send`] waits for
//!   room in the queue, so every request is delivered or fails with a reason; nothing is dropped.
//!   With [`Backpressure::Drop`] (live collection, which must keep draining the kernel's ring
//!   buffer) `send` never waits: the oldest request is retried for as long as the receiver is
//!   down, and new requests are dropped (and counted) only once the queue is full.
//! - **Retries.** The statuses the OTLP specification calls retryable (429, 502, 503, 504) and
//!   connection failures are retried with exponential backoff, or after the receiver's
//!   `Retry-After`. Other statuses fail the request; the error carries the receiver's answer
//!   (its `google.rpc.Status` message, or the start of a text body). Points a receiver rejects
//!   in an accepted request (OTLP partial success) are counted too.
//! - **Deadline.** One request, retries included, takes at most [`ForwardOptions::deadline`]
//!   (with [`Backpressure::Drop`]: once the forwarder is finishing). When a request runs out of
//!   time because the receiver is unreachable, the receiver counts as down and the requests that
//!   follow fail at once instead of each waiting out its own deadline (a dead receiver delays the
//!   end of a run by one deadline, not by one per request); one of them is tried at most every
//!   `max_backoff`, and when it gets through, forwarding resumes.
//! - **Drain deadline.** [`DrainHandle::begin`] (the CLI calls it on SIGTERM, SIGINT or the end
//!   of `--duration`) bounds what is left: every delivery ends by that instant, senders stop
//!   waiting for room, and [`Forwarder::finish`] returns by then (plus one second for an
//!   attempt already under way) even if the receiver hangs. Requests not delivered by then are
//!   counted in [`ForwardStats::drain_dropped`].
//! - **Connections.** HTTP/1.1 with keep-alive through [`ureq`]; every address the host name
//!   resolves to is tried (`localhost` is often `::1` first). No TLS: forward to a local
//!   OpenTelemetry Collector, which can use TLS and authentication upstream.

use std::io::{self, Read as _, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use prost::Message as _;

use crate::proto::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};

/// Why a forwarder could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The endpoint is not an `http://host[:port][/path]` URL.
    #[error("invalid OTLP/HTTP endpoint {url:?}: {reason}")]
    InvalidEndpoint {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The worker thread could not be started.
    #[error("cannot start the forwarding thread: {0}")]
    Thread(#[source] io::Error),
}

/// What [`Forwarder::send`] does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait for room: nothing is dropped (files and pipes, which can be read more slowly).
    Wait,
    /// Drop the new request and count it (live collection, which must not stop reading). The
    /// oldest request is retried until it is delivered, however long the receiver is down.
    Drop,
}

/// Tuning of a [`Forwarder`].
#[derive(Debug, Clone)]
pub struct ForwardOptions {
    /// Requests waiting to be sent.
    pub queue_capacity: usize,
    /// What `send` does when the queue is full.
    pub backpressure: Backpressure,
    /// Longest time for one request, all attempts and waits between them included. With
    /// [`Backpressure::Drop`] it applies once the forwarder is finishing.
    pub deadline: Duration,
    /// Longest time for one attempt (connecting, sending, reading the answer).
    pub attempt_timeout: Duration,
    /// Wait before the first retry; doubles per retry (a `Retry-After` answer takes precedence).
    pub initial_backoff: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
    /// Compress request bodies (`Content-Encoding: gzip`).
    pub gzip: bool,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            queue_capacity: 256,
            backpressure: Backpressure::Wait,
            deadline: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            gzip: false,
        }
    }
}

/// What happened to the requests handed to a [`Forwarder`]. Once it has finished,
/// `requests == sent + failed + dropped + drain_dropped`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Requests handed to [`Forwarder::send`] / [`Forwarder::send_encoded`].
    pub requests: u64,
    /// Accepted by the endpoint (2xx).
    pub sent: u64,
    /// Given up on: non-retryable answer, deadline passed, or receiver down.
    pub failed: u64,
    /// Dropped because the queue was full ([`Backpressure::Drop`] only).
    pub dropped: u64,
    /// Not delivered by the drain deadline ([`DrainHandle::begin`]): still queued, under way,
    /// or handed over after the deadline.
    pub drain_dropped: u64,
    /// Requests in the queue now (waiting for the worker).
    pub queue_depth: u64,
    /// The most requests the queue has held at once.
    pub queue_high_water: u64,
    /// Room in the queue ([`ForwardOptions::queue_capacity`]).
    pub queue_capacity: u64,
    /// Retries made.
    pub retries: u64,
    /// Data points the endpoint accepted the request of but rejected (OTLP partial success).
    pub rejected_points: u64,
    /// Request bytes accepted by the endpoint, as sent (after compression).
    pub bytes_sent: u64,
    /// The last failure, for the final message.
    pub last_error: Option<String>,
}

/// `http://host[:port]` plus the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` to connect to and to send as `Host`.
    pub authority: String,
    /// Request path, ending in `/v1/metrics`.
    pub path: String,
}

impl Endpoint {
    /// Parses an OTLP/HTTP base URL (`http://localhost:4318`) or a full metrics URL (ending in
    /// `/v1/metrics`); the default port is 80.
    pub fn parse(url: &str) -> Result<Endpoint, ForwardError> {
        let invalid = |reason| ForwardError::InvalidEndpoint {
            url: url.to_owned(),
            reason,
        };
        if url.starts_with("https://") {
            return Err(invalid(
                "https is not supported: forward to a local collector over http (it can use TLS upstream)",
            ));
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| invalid("expected http://host[:port][/path]"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') {
            return Err(invalid("missing host (user info is not supported)"));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            let port = authority.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
            port.parse::<u16>().map_err(|_| invalid("invalid port"))?;
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let base = path.trim_end_matches('/');
        let path = if base.ends_with("/v1/metrics") {
            base.to_owned()
        } else {
            format!("{base}/v1/metrics")
        };
        Ok(Endpoint { authority, path })
    }

    /// The full URL requests go to.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

/// Sends requests to an OTLP/HTTP endpoint from a background thread.
#[derive(Debug)]
pub struct Forwarder {
    queue: Option<SyncSender<Vec<u8>>>,
    backpressure: Backpressure,
    worker: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// What the forwarder, its worker and its drain handles share.
#[derive(Debug, Default)]
struct Shared {
    stats: Mutex<ForwardStats>,
    /// The forwarder is finishing: requests get their deadline, retry sleeps end early.
    finishing: AtomicBool,
    /// Nanoseconds after `epoch` by which everything must be done (0: no drain deadline).
    drain_deadline: AtomicU64,
    epoch: Option<Instant>,
    /// Requests queued, not yet taken by the worker.
    depth: AtomicU64,
    /// Requests taken by the worker and not finished yet (0 or 1).
    under_way: AtomicU64,
    /// Signalled when the worker takes a request (room in the queue) or a drain begins.
    room: Condvar,
    room_lock: Mutex<()>,
    /// `finish` gave up waiting for the worker and counted what it held: the worker changes
    /// no count any more.
    abandoned: AtomicBool,
    /// The worker has finished every request it took.
    done: Mutex<bool>,
    done_signal: Condvar,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            epoch: Some(Instant::now()),
            ..Shared::default()
        }
    }

    fn drain_deadline(&self) -> Option<Instant> {
        match self.drain_deadline.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(self.epoch? + Duration::from_nanos(nanos)),
        }
    }

    fn draining(&self) -> bool {
        self.drain_deadline.load(Ordering::Acquire) != 0
    }

    /// A drain deadline was set and has passed.
    fn drain_passed(&self) -> bool {
        self.drain_deadline()
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    fn begin_drain(&self, deadline: Instant) {
        let epoch = self.epoch.unwrap_or_else(Instant::now);
        // At least 1 ns after the epoch: 0 means "no deadline".
        let nanos = (deadline.saturating_duration_since(epoch).as_nanos() as u64).max(1);
        // The first deadline set stays (a second signal does not extend it).
        let _ = self
            .drain_deadline
            .compare_exchange(0, nanos, Ordering::AcqRel, Ordering::Acquire);
        self.finishing.store(true, Ordering::Release);
        let _guard = lock(&self.room_lock);
        self.room.notify_all();
    }
}

/// Starts the drain of a [`Forwarder`] from another thread (a signal watcher).
#[derive(Debug, Clone)]
pub struct DrainHandle {
    shared: Arc<Shared>,
}

impl DrainHandle {
    /// Everything queued must be delivered by `deadline`; what is not is dropped and counted
    /// ([`ForwardStats::drain_dropped`]), as is every request sent after it. Requests sent
    /// before it are still queued (the rest of a ring read after a signal). The first deadline
    /// given stays.
    pub fn begin(&self, deadline: Instant) {
        self.shared.begin_drain(deadline);
    }

    /// Whether a drain has begun.
    pub fn begun(&self) -> bool {
        self.shared.draining()
    }
}

impl Forwarder {
    /// Starts the worker thread for `url` (see [`Endpoint::parse`]).
    pub fn new(url: &str, options: ForwardOptions) -> Result<Forwarder, ForwardError> {
        let agent = ureq::Agent::new_with_config(client_config(&options));
        Forwarder::with_agent(url, options, agent)
    }

    fn with_agent(
        url: &str,
        options: ForwardOptions,
        agent: ureq::Agent,
    ) -> Result<Forwarder, ForwardError> {
        let endpoint = Endpoint::parse(url)?;
        let (queue, receiver) = mpsc::sync_channel::<Vec<u8>>(options.queue_capacity.max(1));
        let shared = Arc::new(Shared::new());
        lock(&shared.stats).queue_capacity = options.queue_capacity.max(1) as u64;
        let backpressure = options.backpressure;
        let mut worker = Worker {
            agent,
            url: endpoint.url(),
            options,
            shared: Arc::clone(&shared),
            receiver_down: None,
        };
        let worker = std::thread::Builder::new()
            .name("otlp-forward".into())
            .spawn(move || {
                for body in receiver {
                    worker.take(body);
                }
                *lock(&worker.shared.done) = true;
                worker.shared.done_signal.notify_all();
            })
            .map_err(ForwardError::Thread)?;
        Ok(Forwarder {
            queue: Some(queue),
            backpressure,
            worker: Some(worker),
            shared,
        })
    }

    /// A handle that starts the drain (with its deadline) from another thread.
    pub fn drain_handle(&self) -> DrainHandle {
        DrainHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Queues a request (encoded here). See [`Forwarder::send_encoded`].
    pub fn send(&self, request: &ExportMetricsServiceRequest) -> bool {
        self.send_encoded(request.encode_to_vec())
    }

    /// Queues an encoded `ExportMetricsServiceRequest` as it is, for example the bytes a
    /// producer wrote (which keep fields this decoder does not know). With
    /// [`Backpressure::Wait`] this waits while the queue is full (until the drain deadline, if
    /// one is set); with [`Backpressure::Drop`] it returns false (and counts a drop) instead.
    /// During a drain ([`DrainHandle::begin`]) requests are still queued until the deadline;
    /// after it, none is, and each counts in [`ForwardStats::drain_dropped`].
    pub fn send_encoded(&self, body: Vec<u8>) -> bool {
        let shared = &*self.shared;
        lock(&shared.stats).requests += 1;
        let Some(queue) = &self.queue else {
            lock(&shared.stats).dropped += 1;
            return false;
        };
        // Counted before the worker can take it, so the depth never goes below zero.
        let depth = shared.depth.fetch_add(1, Ordering::AcqRel) + 1;
        let mut body = Some(body);
        let outcome = loop {
            if shared.drain_passed() {
                break Err(true);
            }
            match queue.try_send(body.take().unwrap_or_default()) {
                Ok(()) => break Ok(()),
                Err(TrySendError::Disconnected(_)) => break Err(false),
                Err(TrySendError::Full(_)) if self.backpressure == Backpressure::Drop => {
                    break Err(false)
                }
                Err(TrySendError::Full(back)) => {
                    body = Some(back);
                    // Wait for the worker to take one (or a drain to begin).
                    let guard = lock(&shared.room_lock);
                    let _ = shared.room.wait_timeout(guard, Duration::from_millis(20));
                }
            }
        };
        match outcome {
            Ok(()) => {
                let mut stats = lock(&shared.stats);
                stats.queue_high_water = stats.queue_high_water.max(depth);
                true
            }
            Err(drain) => {
                shared.depth.fetch_sub(1, Ordering::AcqRel);
                let mut stats = lock(&shared.stats);
                if drain {
                    stats.drain_dropped += 1;
                } else {
                    stats.dropped += 1;
                }
                false
            }
        }
    }

    /// Counts so far, with the current queue depth.
    pub fn stats(&self) -> ForwardStats {
        let mut stats = lock(&self.shared.stats).clone();
        stats.queue_depth = self.shared.depth.load(Ordering::Acquire);
        stats
    }

    /// Sends what is queued, stops the worker and returns the final counts. Without a drain
    /// deadline each request gets its own ([`ForwardOptions::deadline`]); after
    /// [`DrainHandle::begin`] this returns by the drain deadline (plus one second for an
    /// attempt already under way), counting what was not delivered as `drain_dropped`.
    pub fn finish(mut self) -> ForwardStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        let shared = &*self.shared;
        shared.finishing.store(true, Ordering::Release);
        drop(self.queue.take());
        let Some(worker) = self.worker.take() else {
            return;
        };
        {
            let _guard = lock(&shared.room_lock);
            shared.room.notify_all();
        }
        let mut done = lock(&shared.done);
        while !*done {
            let wait = match shared.drain_deadline() {
                // An attempt under way has a timeout that ends by the drain deadline; the
                // second covers the time it takes to return.
                Some(deadline) => {
                    let left = (deadline + DRAIN_GRACE).saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    left.min(Duration::from_millis(50))
                }
                None => Duration::from_millis(50),
            };
            done = shared
                .done_signal
                .wait_timeout(done, wait)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        let finished = *done;
        drop(done);
        if finished {
            let _ = worker.join();
        } else {
            // The worker hangs past the deadline: leave it (the process is ending) and count
            // what it still holds. It changes no count from now on (`abandoned`).
            let mut stats = lock(&shared.stats);
            stats.drain_dropped +=
                shared.depth.swap(0, Ordering::AcqRel) + shared.under_way.swap(0, Ordering::AcqRel);
            shared.abandoned.store(true, Ordering::Release);
        }
    }
}

/// How long past the drain deadline [`Forwarder::finish`] waits for an attempt under way.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The HTTP client's settings (one agent per forwarder, so connections are kept alive).
fn client_config(options: &ForwardOptions) -> ureq::config::Config {
    ureq::Agent::config_builder()
        // Statuses are answers to act on, not transport errors.
        .http_status_as_error(false)
        .user_agent(concat!("ue-metrics-decode/", env!("CARGO_PKG_VERSION")))
        .timeout_global(Some(options.attempt_timeout))
        .build()
}

/// Most of a receiver's error body that goes into a message.
const MAX_ERROR_BODY: usize = 512;

/// Outcome of one attempt.
enum Attempt {
    /// Accepted; `rejected` points were not (OTLP partial success), for the reason given.
    Delivered {
        rejected: u64,
        message: Option<String>,
    },
    /// Retryable; the receiver may say when (`Retry-After`).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Fail(String),
}

/// The background side: delivers one request at a time.
struct Worker {
    agent: ureq::Agent,
    url: String,
    options: ForwardOptions,
    shared: Arc<Shared>,
    /// Set while the receiver counts as down (a request ran out of time on retryable failures).
    receiver_down: Option<Down>,
}

/// The receiver is down: requests fail without being sent, except one attempt (a probe) at most
/// every `max_backoff`, so a long-running pipe resumes when the receiver returns.
struct Down {
    reason: String,
    last_probe: Instant,
}

impl Worker {
    /// The counts, unless `finish` has abandoned this worker (then `None`: it counted what the
    /// worker held already).
    fn stats(&self) -> Option<MutexGuard<'_, ForwardStats>> {
        let stats = lock(&self.shared.stats);
        (!self.shared.abandoned.load(Ordering::Acquire)).then_some(stats)
    }

    /// The counts, for the final count of the request under way: it stops being under way in
    /// the same lock, so `finish` giving up on the worker counts it either here or there, never
    /// twice or not at all. `None` once abandoned (as [`Worker::stats`]).
    fn request_done(&self) -> Option<MutexGuard<'_, ForwardStats>> {
        let stats = self.stats()?;
        self.shared.under_way.store(0, Ordering::Release);
        Some(stats)
    }

    /// Takes one request off the queue: delivers it, or counts it as dropped when the drain
    /// deadline has passed.
    fn take(&mut self, body: Vec<u8>) {
        let shared = Arc::clone(&self.shared);
        let under_way = {
            // From queued to under way in one step under the stats lock, which `finish` takes
            // to count what an abandoned worker holds (`depth + under_way`).
            let Some(mut stats) = self.stats() else {
                // Abandoned: `finish` counted this request as queued.
                return;
            };
            shared.depth.fetch_sub(1, Ordering::AcqRel);
            let too_late = shared.drain_passed();
            if too_late {
                stats.drain_dropped += 1;
            } else {
                shared.under_way.store(1, Ordering::Release);
            }
            !too_late
        };
        {
            let _guard = lock(&shared.room_lock);
            shared.room.notify_all();
        }
        if under_way {
            // Every way out of `deliver` ends in `request_done` (or finds the worker
            // abandoned).
            self.deliver(body);
        }
    }

    fn deliver(&mut self, body: Vec<u8>) {
        let probing = match &mut self.receiver_down {
            Some(down) if down.last_probe.elapsed() < self.options.max_backoff => {
                let reason = format!("not sent: the receiver is down ({})", down.reason);
                return self.fail(reason);
            }
            Some(down) => {
                down.last_probe = Instant::now();
                true
            }
            None => false,
        };
        let body = if self.options.gzip { gzip(&body) } else { body };
        let mut started = Instant::now();
        let mut backoff = self.options.initial_backoff;
        loop {
            let deadline = self.deadline(&mut started);
            let timeout = deadline.map_or(self.options.attempt_timeout, |d| {
                d.saturating_duration_since(Instant::now())
                    .min(self.options.attempt_timeout)
            });
            let (reason, after) = match self.attempt(&body, timeout) {
                Attempt::Delivered { rejected, message } => {
                    self.receiver_down = None;
                    let Some(mut stats) = self.request_done() else {
                        return;
                    };
                    stats.sent += 1;
                    stats.bytes_sent += body.len() as u64;
                    stats.rejected_points += rejected;
                    if let Some(message) = message {
                        stats.last_error = Some(format!(
                            "POST {}: {rejected} points rejected: {message}",
                            self.url
                        ));
                    }
                    return;
                }
                Attempt::Fail(reason) => {
                    // It answered: it is up.
                    self.receiver_down = None;
                    return self.fail(reason);
                }
                Attempt::Retry { reason, .. } if probing => {
                    return self.fail(format!("the receiver is still down: {reason}"));
                }
                Attempt::Retry { reason, after } => (reason, after),
            };
            let wait = after.unwrap_or(backoff);
            backoff = (backoff * 2).min(self.options.max_backoff);
            if let Some(deadline) = deadline {
                if Instant::now() + wait >= deadline {
                    if self.cut_by_drain(deadline) {
                        return self.drain_drop(reason);
                    }
                    let reason = format!(
                        "{reason}; gave up after {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    self.receiver_down = Some(Down {
                        reason: reason.clone(),
                        last_probe: Instant::now(),
                    });
                    return self.fail(reason);
                }
            }
            if let Some(mut stats) = self.stats() {
                stats.retries += 1;
                stats.last_error = Some(reason);
            }
            self.sleep(wait, deadline);
        }
    }

    /// When the current request must be done by. With [`Backpressure::Drop`] there is none
    /// until the forwarder finishes; from then on (`started` moves to that moment) there is.
    /// A drain deadline comes first when it is earlier.
    fn deadline(&self, started: &mut Instant) -> Option<Instant> {
        let own = match self.options.backpressure {
            Backpressure::Wait => Some(*started + self.options.deadline),
            Backpressure::Drop if self.shared.finishing.load(Ordering::Acquire) => {
                Some(*started + self.options.deadline)
            }
            Backpressure::Drop => {
                *started = Instant::now();
                None
            }
        };
        match (own, self.shared.drain_deadline()) {
            (Some(own), Some(drain)) => Some(own.min(drain)),
            (own, drain) => own.or(drain),
        }
    }

    /// Whether `deadline` is the drain deadline (not the request's own).
    fn cut_by_drain(&self, deadline: Instant) -> bool {
        self.shared.drain_deadline() == Some(deadline)
    }

    /// The request was not delivered by the drain deadline.
    fn drain_drop(&self, reason: String) {
        if let Some(mut stats) = self.request_done() {
            stats.drain_dropped += 1;
            stats.last_error = Some(format!(
                "POST {}: {reason}; the drain deadline passed",
                self.url
            ));
        }
    }

    /// Sleeps `wait`, in short steps: without a deadline it wakes early when the forwarder
    /// starts finishing (the request then gets its deadline); a drain deadline that passes
    /// ends it too.
    fn sleep(&self, wait: Duration, deadline: Option<Instant>) {
        let until = Instant::now() + wait;
        loop {
            let now = Instant::now();
            let left = until.saturating_duration_since(now);
            let woken = match deadline {
                None => self.shared.finishing.load(Ordering::Acquire),
                Some(_) => self.shared.drain_deadline().is_some_and(|d| now >= d),
            };
            if left.is_zero() || woken {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    fn fail(&self, reason: String) {
        let Some(mut stats) = self.request_done() else {
            return;
        };
        stats.failed += 1;
        stats.last_error = Some(format!("POST {}: {reason}", self.url));
    }

    fn attempt(&self, body: &[u8], timeout: Duration) -> Attempt {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/x-protobuf");
        if self.options.gzip {
            request = request.header("Content-Encoding", "gzip");
        }
        let response = request
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(body);
        let mut response = match response {
            Ok(response) => response,
            Err(e) => {
                return Attempt::Retry {
                    reason: e.to_string(),
                    after: None,
                }
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
        let content_type = header("content-type").unwrap_or_default();
        // Read (a bounded part of) the body: the answer to show, and the connection can be
        // reused once a small body is read to the end.
        let mut answer = Vec::new();
        let _ = response
            .body_mut()
            .as_reader()
            .take(64 * 1024)
            .read_to_end(&mut answer);
        if (200..300).contains(&status) {
            return partial_success(&content_type, &answer);
        }
        let reason = format!(
            "HTTP {status}{}",
            describe_answer(&content_type, &answer)
                .map(|a| format!(": {a}"))
                .unwrap_or_default()
        );
        match status {
            429 | 502 | 503 | 504 => Attempt::Retry {
                reason,
                after: retry_after,
            },
            _ => Attempt::Fail(format!("{reason} (not retryable)")),
        }
    }
}

/// What an accepted request's answer says about rejected points (an empty answer: none).
fn partial_success(content_type: &str, answer: &[u8]) -> Attempt {
    let partial = content_type
        .starts_with("application/x-protobuf")
        .then(|| ExportMetricsServiceResponse::decode(answer).ok())
        .flatten()
        .and_then(|response| response.partial_success);
    match partial {
        Some(p) if p.rejected_data_points > 0 || !p.error_message.is_empty() => {
            let message = if p.error_message.is_empty() {
                "no reason given".to_owned()
            } else {
                p.error_message.escape_debug().to_string()
            };
            Attempt::Delivered {
                rejected: u64::try_from(p.rejected_data_points).unwrap_or(0),
                message: Some(message),
            }
        }
        _ => Attempt::Delivered {
            rejected: 0,
            message: None,
        },
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// `google.rpc.Status`, the body OTLP/HTTP receivers answer errors with (protobuf encoding).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The receiver's answer in one line: a `google.rpc.Status` message, or the start of a text
/// body with control characters escaped.
fn describe_answer(content_type: &str, body: &[u8]) -> Option<String> {
    let text = if content_type.starts_with("application/x-protobuf") {
        RpcStatus::decode(body)
            .ok()
            .map(|status| status.message)
            .unwrap_or_else(|| format!("{} bytes of protobuf", body.len()))
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut shown: String = text.chars().take(MAX_ERROR_BODY).collect();
    if shown.len() < text.len() {
        shown.push_str("...");
    }
    Some(shown.escape_debug().to_string())
}

/// `Retry-After`: delay-seconds, or an HTTP date (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37
/// GMT`) turned into the time from now.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

fn parse_http_date(value: &str) -> Option<SystemTime> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let mut parts = value.split_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let year: u64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|&m| m == month)? as u64 + 1;
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let (y, mo) = if month <= 2 {
        (year.checked_sub(1)?, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let seconds = days * 86_400 + h * 3600 + m * 60 + s;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://localhost:4318").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("localhost:4318", "/v1/metrics")
        );
        assert_eq!(e.url(), "http://localhost:4318/v1/metrics");
        let e = Endpoint::parse("http://collector/otlp/").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("collector:80", "/otlp/v1/metrics")
        );
        let e = Endpoint::parse("http://127.0.0.1:9/v1/metrics").unwrap();
        assert_eq!(e.path, "/v1/metrics");
        let e = Endpoint::parse("http://[::1]:4318").unwrap();
        assert_eq!(e.authority, "[::1]:4318");
        let e = Endpoint::parse("http://[::1]").unwrap();
        assert_eq!(e.authority, "[::1]:80");
        for bad in [
            "https://x",
            "ftp://x",
            "http://",
            "http://h:port",
            "http://u@h",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    /// Resolves every name to fixed addresses, in order.
    #[derive(Debug)]
    struct FixedAddresses(Vec<std::net::SocketAddr>);

    impl ureq::unversioned::resolver::Resolver for FixedAddresses {
        fn resolve(
            &self,
            _uri: &ureq::http::Uri,
            _config: &ureq::config::Config,
            _timeout: ureq::unversioned::transport::NextTimeout,
        ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
            let mut addresses = self.empty();
            for a in &self.0 {
                addresses.push(*a);
            }
            Ok(addresses)
        }
    }

    #[test]
    fn every_resolved_address_is_tried() {
        use std::io::BufRead as _;
        // `localhost` as ::1 first (nothing listens there), then 127.0.0.1 (the receiver).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v4 = listener.local_addr().unwrap();
        let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, v4.port()));
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = io::BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line.trim().is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            (&stream)
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            body
        });
        let options = ForwardOptions {
            deadline: Duration::from_secs(5),
            initial_backoff: Duration::from_secs(5),
            ..ForwardOptions::default()
        };
        let agent = ureq::Agent::with_parts(
            client_config(&options),
            ureq::unversioned::transport::DefaultConnector::new(),
            FixedAddresses(vec![v6, v4]),
        );
        let url = format!("http://localhost:{}", v4.port());
        let forwarder = Forwarder::with_agent(&url, options, agent).unwrap();
        forwarder.send_encoded(b"request".to_vec());
        let stats = forwarder.finish();
        // First try, no retry: the backoff (5 s) is beyond the deadline's reach otherwise.
        assert_eq!(
            (stats.sent, stats.retries, stats.failed),
            (1, 0, 0),
            "{:?}",
            stats.last_error
        );
        assert_eq!(server.join().unwrap(), b"request");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(SystemTime::UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_835_438_400))
        );
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        for bad in [
            "",
            "-1",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad), None, "{bad}");
        }
    }

    #[test]
    fn answers_are_bounded_and_escaped() {
        let status = RpcStatus {
            code: 3,
            message: "bad metric".into(),
        };
        assert_eq!(
            describe_answer("application/x-protobuf", &status.encode_to_vec()).as_deref(),
            Some("bad metric")
        );
        assert_eq!(
            describe_answer("text/plain", b"no\n\x1b[31m").as_deref(),
            Some("no\\n\\u{1b}[31m")
        );
        let long = describe_answer("text/plain", &[b'x'; 5000]).unwrap();
        assert_eq!(long.len(), MAX_ERROR_BODY + 3);
        assert_eq!(describe_answer("text/plain", b"  "), None);
    }
}
