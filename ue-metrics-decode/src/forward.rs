//! OTLP/HTTP forwarding: `POST {endpoint}/v1/metrics` with `Content-Type:
//! application/x-protobuf`, from a bounded queue drained by one background thread, with
//! retries and exponential backoff for the responses the OTLP specification calls retryable
//! (429, 502, 503, 504, and connection failures).
//!
//! The client is a small HTTP/1.1 implementation over `TcpStream` (one connection per request,
//! `Connection: close`): enough for a local collector, no TLS. Use an OpenTelemetry Collector
//! next to the agent for TLS or authentication.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use prost::Message as _;

use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;

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

/// Tuning of a [`Forwarder`].
#[derive(Debug, Clone)]
pub struct ForwardOptions {
    /// Requests waiting to be sent; when full, new requests are dropped (and counted).
    pub queue_capacity: usize,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles per retry.
    pub initial_backoff: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
    /// Connect, read and write timeout of one attempt.
    pub timeout: Duration,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            queue_capacity: 256,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What happened to the requests handed to a [`Forwarder`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Accepted by the endpoint (2xx).
    pub sent: u64,
    /// Given up on: non-retryable response or attempts exhausted.
    pub failed: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Retries made.
    pub retries: u64,
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
}

/// Sends requests to an OTLP/HTTP endpoint from a background thread.
#[derive(Debug)]
pub struct Forwarder {
    queue: Option<SyncSender<Vec<u8>>>,
    worker: Option<JoinHandle<()>>,
    stats: Arc<Mutex<ForwardStats>>,
}

impl Forwarder {
    /// Starts the worker thread for `url` (see [`Endpoint::parse`]).
    pub fn new(url: &str, options: ForwardOptions) -> Result<Forwarder, ForwardError> {
        let endpoint = Endpoint::parse(url)?;
        let (queue, receiver) = mpsc::sync_channel::<Vec<u8>>(options.queue_capacity.max(1));
        let stats = Arc::new(Mutex::new(ForwardStats::default()));
        let worker_stats = Arc::clone(&stats);
        let worker = std::thread::Builder::new()
            .name("otlp-forward".into())
            .spawn(move || {
                for body in receiver {
                    send_with_retries(&endpoint, &options, &body, &worker_stats);
                }
            })
            .map_err(ForwardError::Thread)?;
        Ok(Forwarder {
            queue: Some(queue),
            worker: Some(worker),
            stats,
        })
    }

    /// Queues a request; never blocks. Returns false (and counts a drop) when the queue is full.
    pub fn send(&self, request: &ExportMetricsServiceRequest) -> bool {
        let Some(queue) = &self.queue else {
            return false;
        };
        match queue.try_send(request.encode_to_vec()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                lock(&self.stats).dropped += 1;
                false
            }
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> ForwardStats {
        lock(&self.stats).clone()
    }

    /// Sends what is queued (with retries), stops the worker and returns the final counts.
    pub fn finish(mut self) -> ForwardStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
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

fn lock(stats: &Mutex<ForwardStats>) -> std::sync::MutexGuard<'_, ForwardStats> {
    stats
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Outcome of one attempt.
enum Attempt {
    Done,
    Retry(String),
    Fail(String),
}

fn send_with_retries(
    endpoint: &Endpoint,
    options: &ForwardOptions,
    body: &[u8],
    stats: &Mutex<ForwardStats>,
) {
    let mut backoff = options.initial_backoff;
    for attempt in 1..=options.max_attempts.max(1) {
        let outcome = match post(endpoint, body, options.timeout) {
            Ok(status) if (200..300).contains(&status) => Attempt::Done,
            Ok(status @ (429 | 502 | 503 | 504)) => Attempt::Retry(format!("HTTP {status}")),
            Ok(status) => Attempt::Fail(format!("HTTP {status} (not retryable)")),
            Err(e) => Attempt::Retry(format!("{e}")),
        };
        match outcome {
            Attempt::Done => {
                lock(stats).sent += 1;
                return;
            }
            Attempt::Retry(reason) if attempt < options.max_attempts => {
                {
                    let mut s = lock(stats);
                    s.retries += 1;
                    s.last_error = Some(reason);
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(options.max_backoff);
            }
            Attempt::Retry(reason) | Attempt::Fail(reason) => {
                let mut s = lock(stats);
                s.failed += 1;
                s.last_error = Some(format!(
                    "POST http://{}{}: {reason}",
                    endpoint.authority, endpoint.path
                ));
                return;
            }
        }
    }
}

/// One HTTP/1.1 POST; returns the response status code.
fn post(endpoint: &Endpoint, body: &[u8], timeout: Duration) -> io::Result<u16> {
    let addr = endpoint
        .authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "host has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {}\r\nUser-Agent: ue-metrics-decode/{}\r\nConnection: close\r\n\r\n",
        endpoint.path,
        endpoint.authority,
        body.len(),
        env!("CARGO_PKG_VERSION"),
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an HTTP response: {:?}", status_line.trim_end()),
            )
        })?;
    // Drain the rest so the server sees a clean close (bounded, the body is small).
    let _ = reader.take(1 << 20).read_to_end(&mut Vec::new());
    Ok(status)
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
}
