//! A small HTTP/1.1 client for the stacks' ports on 127.0.0.1: one request per connection
//! (`Connection: close`). Plain HTTP goes over a `TcpStream`, the whole answer read until
//! the server closes it; HTTPS goes through curl, which checks the certificate against the
//! project's CA as any client would. HTTP/1.1 because nginx compresses only for 1.1
//! clients by default (`gzip_http_version`), as browsers are.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where a stack answers: a port on 127.0.0.1, and for HTTPS the CA to trust, the site
/// being `localhost` (the name its certificate is for).
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub port: u16,
    pub ca: Option<&'static Path>,
}

impl Site {
    pub fn plain(port: u16) -> Site {
        Site { port, ca: None }
    }

    /// HTTPS on `port`, trusting `ca` (kept for the rest of the test process).
    pub fn tls(port: u16, ca: &Path) -> Site {
        Site { port, ca: Some(Box::leak(ca.to_path_buf().into_boxed_path())) }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://localhost:{}{path}", self.port)
    }
}

const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name` set by this response.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.strip_prefix(&prefix))
            .map(|v| v.split(';').next().unwrap_or_default().to_owned())
            .next()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl fmt::Display for Response {
    /// Status, headers and the start of the body, for assertion messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "HTTP {}", self.status)?;
        for (name, value) in &self.headers {
            writeln!(f, "{name}: {value}")?;
        }
        let text = self.text();
        let shown: String = text.chars().take(2000).collect();
        write!(f, "\n{shown}")
    }
}

/// `GET path` on the site.
pub fn get(site: Site, path: &str) -> io::Result<Response> {
    request(site, "GET", path, &[], &[])
}

/// One request to the site, `Host: localhost:<port>`, with the given extra headers.
pub fn request(site: Site, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<Response> {
    request_within(site, TIMEOUT, method, path, headers, body)
}

/// Like [`request`], answered within `timeout` (a request that does much work).
pub fn request_within(
    site: Site,
    timeout: Duration,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    match site.ca {
        Some(ca) => curl(site, ca, timeout, method, path, headers, body),
        None => plain(site.port, timeout, method, path, headers, body),
    }
}

fn plain(
    port: u16,
    timeout: Duration,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    parse(&read_answer(&mut stream)?)
}

/// The answer up to its Content-Length when it has one (chromedriver keeps the connection
/// open), else until the server closes the connection.
fn read_answer(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            if let Some(length) =
                parse_head(&raw[..end])?.header("content-length").and_then(|v| v.parse::<usize>().ok())
            {
                while raw.len() < end + 4 + length {
                    let read = stream.read(&mut chunk)?;
                    if read == 0 {
                        break;
                    }
                    raw.extend_from_slice(&chunk[..read]);
                }
                return Ok(raw);
            }
            stream.read_to_end(&mut raw)?;
            return Ok(raw);
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&chunk[..read]);
    }
}

/// The request through curl over HTTP/1.1: headers and body land in separate files, the
/// body already de-chunked (but never decompressed).
fn curl(
    site: Site,
    ca: &Path,
    timeout: Duration,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let dir = tempfile::tempdir()?;
    let (head_file, body_file, sent) = (dir.path().join("head"), dir.path().join("body"), dir.path().join("sent"));
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--http1.1", "--max-time", &timeout.as_secs().to_string()])
        .arg("--cacert")
        .arg(ca)
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", site.port), "--request", method])
        .arg("--dump-header")
        .arg(&head_file)
        .arg("--output")
        .arg(&body_file);
    for (name, value) in headers {
        command.args(["--header", &format!("{name}: {value}")]);
    }
    if !body.is_empty() || method == "POST" {
        std::fs::write(&sent, body)?;
        // A large body would make curl ask `Expect: 100-continue`, and the header file would
        // begin with the interim 100 rather than the answer.
        command.args(["--header", "Expect:"]).arg("--data-binary").arg(format!("@{}", sent.display()));
    }
    let out = command.arg(site.url(path)).stdin(Stdio::null()).output()?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(io::Error::other(format!("curl {method} {}: {why}", site.url(path))));
    }
    let mut response = parse_head(&std::fs::read(&head_file)?)?;
    response.body = std::fs::read(&body_file).unwrap_or_default();
    Ok(response)
}

fn parse(raw: &[u8]) -> io::Result<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad(raw, "no end of headers"))?;
    let mut response = parse_head(&raw[..end])?;
    response.body = raw[end + 4..].to_vec();
    if response.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        response.body = dechunk(&response.body).ok_or_else(|| bad(raw, "a malformed chunked body"))?;
    }
    Ok(response)
}

/// The status line and headers, without the body.
fn parse_head(raw: &[u8]) -> io::Result<Response> {
    let head = std::str::from_utf8(raw).map_err(|_| bad(raw, "headers are not UTF-8"))?;
    let mut lines = head.trim_end().split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let status = status.ok_or_else(|| bad(raw, "no status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Ok(Response { status, headers, body: Vec::new() })
}

fn bad(raw: &[u8], why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{why}: {:?}", String::from_utf8_lossy(raw)))
}

/// The payload of a `Transfer-Encoding: chunked` body (trailers ignored).
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_field = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_field.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// A `multipart/form-data` body of text fields and one file: (content type, body).
pub fn multipart(fields: &[(&str, &str)], file_field: &str, file_name: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("e2e-boundary-{}", std::process::id());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The text between the first `start` and the next `end` after it.
pub fn between<'t>(text: &'t str, start: &str, end: &str) -> Option<&'t str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_split_into_status_headers_and_body() {
        let raw = b"HTTP/1.1 302 Found\r\nLocation: /uploads/\r\nSet-Cookie: csrftoken=abc; Secure\r\n\r\nbody";
        let response = parse(raw).unwrap();
        assert_eq!(response.status, 302);
        assert_eq!(response.header("location"), Some("/uploads/"));
        assert_eq!(response.cookie("csrftoken").as_deref(), Some("abc"));
        assert_eq!(response.body, b"body");
        assert_eq!(between("<a href=\"/x\">", "href=\"", "\""), Some("/x"));
        let chunked =
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n");
        assert_eq!(chunked.unwrap().body, b"abcde");
    }
}
