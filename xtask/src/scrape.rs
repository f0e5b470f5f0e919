//! Reading a Prometheus endpoint the way a scraper does, for `cargo xtask demo`: a plain
//! HTTP/1.0 GET over a `TcpStream` (loopback, no TLS), and the text exposition format (0.0.4)
//! parsed into samples.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

/// One sample line: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name (`http_server_requests_total`, `..._bucket`, `..._count`).
    pub name: String,
    /// The label pairs, in their order, with escapes resolved.
    pub labels: Vec<(String, String)>,
    /// The value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

/// GETs `http://addr/path` and returns the body of a `200` response.
pub fn http_get(addr: &str, path: &str, timeout: Duration) -> Result<String, String> {
    let socket = addr.parse().map_err(|e| format!("address {addr:?}: {e}"))?;
    let mut stream = TcpStream::connect_timeout(&socket, timeout)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let io = |e: std::io::Error| format!("GET http://{addr}{path}: {e}");
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    // One write: the request reaches the server whole.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(io)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET http://{addr}{path}: no complete response"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("GET http://{addr}{path}: {status}"));
    }
    Ok(body.to_string())
}

/// The samples of an exposition text; comments (`# HELP`, `# TYPE`) and blank lines skipped.
/// A malformed line is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| parse_line(line).ok_or_else(|| format!("not a sample line: {line:?}")))
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let (name, mut rest) = line.split_at(name_end);
    if name.is_empty() {
        return None;
    }
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once('=')?;
            let (value, after) = quoted(after.strip_prefix('"')?)?;
            labels.push((key.trim().to_string(), value));
            rest = after;
        }
    }
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        number => number.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A label value up to its closing quote (escapes `\\`, `\"`, `\n`), and what follows.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

/// The sum of the samples named `name` and how many there are (`None` when there are none).
pub fn sum(samples: &[Sample], name: &str) -> Option<(f64, usize)> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| (matching.iter().sum(), matching.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Sample {
        fn label(&self, key: &str) -> Option<&str> {
            self.labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        }
    }

    const TEXT: &str = r#"# HELP http_server_requests_total Requests handled
# TYPE http_server_requests_total counter
http_server_requests_total{job="basic-example",http_route="/",status="200"} 12
http_server_requests_total{job="basic-example",http_route="/login",status="404"} 30 1700000000000

http_server_request_duration_seconds_bucket{job="basic-example",le="+Inf"} 42
http_server_request_duration_seconds_sum{job="basic-example"} 20.75
target_info{job="basic-example",note="a \"quoted\", spaced\\ value\nx"} 1
ue_metrics_decode_records_decoded_total 17
weird_gauge NaN
"#;

    #[test]
    fn samples_with_and_without_labels_are_parsed() {
        let samples = parse(TEXT).unwrap();
        assert_eq!(samples.len(), 7);
        assert_eq!(samples[0].name, "http_server_requests_total");
        assert_eq!(samples[0].label("http_route"), Some("/"));
        assert_eq!(samples[0].value, 12.0);
        // A timestamp after the value is not the value.
        assert_eq!(samples[1].value, 30.0);
        assert_eq!(samples[2].label("le"), Some("+Inf"));
        assert_eq!(samples[3].value, 20.75);
        assert_eq!(
            samples[4].label("note"),
            Some("a \"quoted\", spaced\\ value\nx")
        );
        assert_eq!(samples[5].labels, []);
        assert_eq!(samples[5].value, 17.0);
        assert!(samples[6].value.is_nan());
    }

    #[test]
    fn families_are_summed_over_their_series() {
        let samples = parse(TEXT).unwrap();
        assert_eq!(sum(&samples, "http_server_requests_total"), Some((42.0, 2)));
        assert_eq!(
            sum(&samples, "ue_metrics_decode_records_decoded_total"),
            Some((17.0, 1))
        );
        assert_eq!(sum(&samples, "absent_total"), None);
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in [
            "name_without_value",
            "x{a=\"unterminated} 1",
            "x{a=b} 1",
            "x 1.2.3",
            "{a=\"b\"} 1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse("+Inf_is_a_name +Inf").unwrap()[0].value,
            f64::INFINITY
        );
    }

    #[test]
    fn http_get_reads_the_body_and_refuses_other_statuses() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            for status in ["200 OK", "404 Not Found"] {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = [0u8; 1024];
                let n = stream.read(&mut request).unwrap();
                assert!(String::from_utf8_lossy(&request[..n]).starts_with("GET /metrics "));
                write!(
                    stream,
                    "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\n\r\nx 1\n"
                )
                .unwrap();
            }
        });
        let timeout = Duration::from_secs(5);
        assert_eq!(http_get(&addr, "/metrics", timeout).unwrap(), "x 1\n");
        let refused = http_get(&addr, "/metrics", timeout).unwrap_err();
        assert!(refused.contains("404"), "{refused}");
        server.join().unwrap();
    }
}
