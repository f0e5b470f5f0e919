//! A scripted HTTP/1.1 server for the forwarding tests: answers in order, keeps connections
//! alive unless the client asks to close, and hands every request to the test.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the server read it.
pub struct Received {
    /// Which accepted connection (from 0) carried the request.
    pub connection: usize,
    pub at: Instant,
    pub request_line: String,
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn has_header(&self, header: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(header))
    }
}

/// One scripted answer: status, extra header lines, body.
pub type Answer = (u16, &'static str, &'static str);

pub fn ok() -> Answer {
    (200, "", "")
}

/// Serves requests on `listener` in order, on as many connections as the client opens,
/// answering request `n` with `answers[n]` (200 once the script is used up) after `delay`.
pub fn serve(
    listener: TcpListener,
    answers: Vec<Answer>,
    delay: Duration,
) -> mpsc::Receiver<Received> {
    let (tx, rx) = mpsc::channel();
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    std::thread::spawn(move || {
        for (connection, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { return };
            let (tx, answers) = (tx.clone(), answers.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                while let Some(mut r) = read_request(&mut reader) {
                    std::thread::sleep(delay);
                    let (status, headers, body) = answers.lock().unwrap().next().unwrap_or(ok());
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    r.connection = connection;
                    let close = r.has_header("connection: close");
                    if tx.send(r).is_err() || stream.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                    if close {
                        return;
                    }
                }
            });
        }
    });
    rx
}

/// Reads one request (head and `Content-Length` body); `None` at the end of the connection.
pub fn read_request(reader: &mut impl BufRead) -> Option<Received> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let at = Instant::now();
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
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
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        connection: 0,
        at,
        request_line,
        headers,
        body,
    })
}
