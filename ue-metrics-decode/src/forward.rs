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
//! - **Connections.** HTTP/1.1 with keep-alive through [`ureq`]; every address the host name
//!   resolves to is tried (`localhost` is often `::1` first). No TLS: forward to a local
//!   OpenTelemetry Collector, which can use TLS and authentication upstream.

use std::io::{self, Read as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
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

/// What happened to the requests handed to a [`Forwarder`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Accepted by the endpoint (2xx).
    pub sent: u64,
    /// Given up on: non-retryable answer, deadline passed, or receiver down.
    pub failed: u64,
    /// Dropped because the queue was full ([`Backpressure::Drop`] only).
    pub dropped: u64,
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
    finishing: Arc<AtomicBool>,
    stats: Arc<Mutex<ForwardStats>>,
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
        let stats = Arc::new(Mutex::new(ForwardStats::default()));
        let finishing = Arc::new(AtomicBool::new(false));
        let backpressure = options.backpressure;
        let mut worker = Worker {
            agent,
            url: endpoint.url(),
            options,
            stats: Arc::clone(&stats),
            finishing: Arc::clone(&finishing),
            receiver_down: None,
        };
        let worker = std::thread::Builder::new()
            .name("otlp-forward".into())
            .spawn(move || {
                for body in receiver {
                    worker.deliver(body);
                }
            })
            .map_err(ForwardError::Thread)?;
        Ok(Forwarder {
            queue: Some(queue),
            backpressure,
            worker: Some(worker),
            finishing,
            stats,
        })
    }

    /// Queues a request (encoded here). See [`Forwarder::send_encoded`].
    pub fn send(&self, request: &ExportMetricsServiceRequest) -> bool {
        self.send_encoded(request.encode_to_vec())
    }

    /// Queues an encoded `ExportMetricsServiceRequest` as it is, for example the bytes a
    /// producer wrote (which keep fields this decoder does not know). With
    /// [`Backpressure::Wait`] this waits while the queue is full; with [`Backpressure::Drop`]
    /// it returns false (and counts a drop) instead.
    pub fn send_encoded(&self, body: Vec<u8>) -> bool {
        let Some(queue) = &self.queue else {
            return false;
        };
        let queued = match self.backpressure {
            Backpressure::Wait => queue.send(body).is_ok(),
            Backpressure::Drop => match queue.try_send(body) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
        };
        if !queued {
            lock(&self.stats).dropped += 1;
        }
        queued
    }

    /// Counts so far.
    pub fn stats(&self) -> ForwardStats {
        lock(&self.stats).clone()
    }

    /// Sends what is queued (each request within the deadline), stops the worker and returns
    /// the final counts.
    pub fn finish(mut self) -> ForwardStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.finishing.store(true, Ordering::Relaxed);
        drop(self.queue.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock(stats: &Mutex<ForwardStats>) -> MutexGuard<'_, ForwardStats> {
    stats
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
    stats: Arc<Mutex<ForwardStats>>,
    finishing: Arc<AtomicBool>,
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
                    let mut stats = lock(&self.stats);
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
            {
                let mut stats = lock(&self.stats);
                stats.retries += 1;
                stats.last_error = Some(reason);
            }
            self.sleep(wait, deadline);
        }
    }

    /// When the current request must be done by. With [`Backpressure::Drop`] there is none
    /// until the forwarder finishes; from then on (`started` moves to that moment) there is.
    fn deadline(&self, started: &mut Instant) -> Option<Instant> {
        match self.options.backpressure {
            Backpressure::Wait => Some(*started + self.options.deadline),
            Backpressure::Drop if self.finishing.load(Ordering::Relaxed) => {
                Some(*started + self.options.deadline)
            }
            Backpressure::Drop => {
                *started = Instant::now();
                None
            }
        }
    }

    /// Sleeps `wait`; without a deadline, wakes early when the forwarder starts finishing (the
    /// request then gets its deadline).
    fn sleep(&self, wait: Duration, deadline: Option<Instant>) {
        if deadline.is_some() {
            std::thread::sleep(wait);
            return;
        }
        let until = Instant::now() + wait;
        while !self.finishing.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    fn fail(&self, reason: String) {
        let mut stats = lock(&self.stats);
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
