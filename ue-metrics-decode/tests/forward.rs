//! OTLP/HTTP forwarding against a local HTTP server.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::requests::counter;
use prost::Message as _;
use ue_metrics_decode::forward::{ForwardOptions, Forwarder};
use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;

struct Received {
    request_line: String,
    headers: Vec<String>,
    body: Vec<u8>,
}

/// Serves `statuses.len()` connections, answering each with the next status.
fn server(statuses: Vec<u16>) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for status in statuses {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end().to_owned();
                if line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                headers.push(line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            tx.send(Received {
                request_line,
                headers,
                body,
            })
            .unwrap();
        }
    });
    (url, rx)
}

fn fast() -> ForwardOptions {
    ForwardOptions {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
        ..ForwardOptions::default()
    }
}

#[test]
fn posts_protobuf_to_v1_metrics_and_retries_retryable_statuses() {
    let (url, received) = server(vec![503, 429, 200, 200]);
    let forwarder = Forwarder::new(&url, fast()).unwrap();
    assert!(forwarder.send(&counter("a", 2, 1)));
    assert!(forwarder.send(&counter("b", 1, 2)));
    let stats = forwarder.finish();
    assert_eq!(
        (stats.sent, stats.failed, stats.retries, stats.dropped),
        (2, 0, 2, 0)
    );
    let all: Vec<Received> = received.try_iter().collect();
    assert_eq!(all.len(), 4);
    for r in &all {
        assert_eq!(r.request_line.trim_end(), "POST /v1/metrics HTTP/1.1");
        assert!(r
            .headers
            .iter()
            .any(|h| h == "Content-Type: application/x-protobuf"));
        assert!(r.headers.iter().any(|h| h.starts_with("Host: 127.0.0.1:")));
    }
    // The retried request is the same bytes; the last one is the second request.
    assert_eq!(
        ExportMetricsServiceRequest::decode(&all[2].body[..]).unwrap(),
        counter("a", 2, 1)
    );
    assert_eq!(all[0].body, all[2].body);
    assert_eq!(
        ExportMetricsServiceRequest::decode(&all[3].body[..]).unwrap(),
        counter("b", 1, 2)
    );
}

#[test]
fn client_errors_are_not_retried() {
    let (url, received) = server(vec![400]);
    let forwarder = Forwarder::new(&url, fast()).unwrap();
    forwarder.send(&counter("a", 1, 1));
    let stats = forwarder.finish();
    assert_eq!((stats.sent, stats.failed, stats.retries), (0, 1, 0));
    assert!(stats.last_error.unwrap().contains("HTTP 400"));
    assert_eq!(received.try_iter().count(), 1);
}

#[test]
fn unreachable_endpoint_gives_up_after_max_attempts() {
    // Bind then drop: nothing listens on that port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = ForwardOptions {
        max_attempts: 3,
        ..fast()
    };
    let forwarder = Forwarder::new(&format!("http://127.0.0.1:{port}"), options).unwrap();
    forwarder.send(&counter("a", 1, 1));
    let stats = forwarder.finish();
    assert_eq!((stats.sent, stats.failed, stats.retries), (0, 1, 2));
}

#[test]
fn the_queue_is_bounded_and_drops_are_counted() {
    // A server that accepts nothing keeps the worker busy on the first request.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let options = ForwardOptions {
        queue_capacity: 2,
        max_attempts: 1,
        timeout: Duration::from_millis(300),
        ..fast()
    };
    let forwarder = Forwarder::new(&url, options).unwrap();
    let accepted = (0..10)
        .filter(|_| forwarder.send(&counter("a", 1, 1)))
        .count();
    // At most the queue plus the one the worker holds.
    assert!((2..=3).contains(&accepted), "{accepted}");
    let stats = forwarder.finish();
    assert_eq!(stats.dropped, 10 - accepted as u64);
    drop(listener);
}
