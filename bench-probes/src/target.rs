//! Targets whose latency the diagnosis samples: a shell command (one run =
//! one sample), an HTTP/1.1 `GET` on a kept-alive connection, a TCP
//! request/response exchange, or a callback in the library.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Errors while sampling a target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The command could not be started.
    #[error("failed to run target command {cmd:?}: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The command exited non-zero.
    #[error("target command {cmd:?} failed: {status}")]
    Status {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// A network exchange failed.
    #[error("failed to {what} {addr}: {source}")]
    Net {
        /// What was being done.
        what: &'static str,
        /// The peer.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP server answered with something unusable.
    #[error("bad http response from {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The target description is invalid.
    #[error("invalid target {0}")]
    Invalid(String),
    /// A callback target reported a failure.
    #[error("target callback failed: {0}")]
    Callback(String),
}

/// Something whose latency can be sampled.
pub trait Target {
    /// Perform one request (or run) and return how long it took.
    fn sample(&mut self) -> Result<Duration, TargetError>;
    /// A one-line description for reports.
    fn describe(&self) -> String;
}

/// A shell command run with `sh -c`, optionally pinned to one CPU.
#[derive(Debug, Clone)]
pub struct CommandTarget {
    cmd: String,
    cpu: Option<usize>,
}

impl CommandTarget {
    /// Run `cmd` through `sh -c`, pinned to `cpu` when given.
    pub fn new(cmd: impl Into<String>, cpu: Option<usize>) -> Self {
        CommandTarget {
            cmd: cmd.into(),
            cpu,
        }
    }
}

impl Target for CommandTarget {
    fn sample(&mut self) -> Result<Duration, TargetError> {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(&self.cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(cpu) = self.cpu {
            // SAFETY: the closure runs in the forked child before exec and only
            // calls sched_setaffinity on a stack cpu_set_t (async-signal-safe).
            unsafe {
                c.pre_exec(move || {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let t0 = Instant::now();
        let status = c.status().map_err(|source| TargetError::Spawn {
            cmd: self.cmd.clone(),
            source,
        })?;
        let dt = t0.elapsed();
        if !status.success() {
            return Err(TargetError::Status {
                cmd: self.cmd.clone(),
                status,
            });
        }
        Ok(dt)
    }

    fn describe(&self) -> String {
        format!("command {:?}", self.cmd)
    }
}

/// A TCP request/response endpoint: send `request`, then read `response_len`
/// bytes (or, when `None`, whatever one read returns). The connection is
/// kept and re-opened once if it breaks.
#[derive(Debug)]
pub struct TcpTarget {
    addr: SocketAddr,
    request: Vec<u8>,
    response_len: Option<usize>,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl TcpTarget {
    /// A target at `host:port` sending `request` per sample.
    pub fn new(
        addr: &str,
        request: Vec<u8>,
        response_len: Option<usize>,
    ) -> Result<Self, TargetError> {
        let a = addr
            .to_socket_addrs()
            .map_err(|e| TargetError::Invalid(format!("tcp address {addr:?}: {e}")))?
            .next()
            .ok_or_else(|| {
                TargetError::Invalid(format!("tcp address {addr:?} resolves to nothing"))
            })?;
        if request.is_empty() {
            return Err(TargetError::Invalid("tcp request is empty".into()));
        }
        Ok(TcpTarget {
            addr: a,
            request,
            response_len,
            stream: None,
            buf: vec![0; 64 << 10],
        })
    }

    /// Use an already connected stream (for example one opened inside a
    /// network namespace).
    pub fn from_stream(
        stream: TcpStream,
        request: Vec<u8>,
        response_len: Option<usize>,
    ) -> Result<Self, TargetError> {
        let addr = stream.peer_addr().map_err(|source| TargetError::Net {
            what: "read peer of",
            addr: "stream".into(),
            source,
        })?;
        let _ = stream.set_nodelay(true);
        Ok(TcpTarget {
            addr,
            request,
            response_len,
            stream: Some(stream),
            buf: vec![0; 64 << 10],
        })
    }

    fn connect(&mut self) -> Result<&mut TcpStream, TargetError> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).map_err(
                |source| TargetError::Net {
                    what: "connect to",
                    addr: self.addr.to_string(),
                    source,
                },
            )?;
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            self.stream = Some(s);
        }
        self.stream
            .as_mut()
            .ok_or_else(|| TargetError::Invalid("tcp stream missing after connect".into()))
    }

    fn exchange(&mut self) -> Result<(), std::io::Error> {
        let want = self.response_len;
        let req = std::mem::take(&mut self.request);
        let mut buf = std::mem::take(&mut self.buf);
        let r = (|| {
            let s = self.connect().map_err(std::io::Error::other)?;
            s.write_all(&req)?;
            match want {
                Some(n) => {
                    let mut left = n;
                    while left > 0 {
                        let k = buf.len().min(left);
                        let got = s.read(&mut buf[..k])?;
                        if got == 0 {
                            return Err(std::io::ErrorKind::UnexpectedEof.into());
                        }
                        left -= got;
                    }
                }
                None => {
                    if s.read(&mut buf)? == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
            Ok(())
        })();
        self.request = req;
        self.buf = buf;
        r
    }
}

impl Target for TcpTarget {
    fn sample(&mut self) -> Result<Duration, TargetError> {
        let t0 = Instant::now();
        if self.exchange().is_ok() {
            return Ok(t0.elapsed());
        }
        // one reconnect
        self.stream = None;
        let t0 = Instant::now();
        self.exchange().map_err(|source| TargetError::Net {
            what: "exchange a request with",
            addr: self.addr.to_string(),
            source,
        })?;
        Ok(t0.elapsed())
    }

    fn describe(&self) -> String {
        format!("tcp {}", self.addr)
    }
}

/// The head of an HTTP/1.1 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHead {
    /// Status code.
    pub status: u16,
    /// `Content-Length`, if given.
    pub content_length: Option<usize>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `Connection: close`.
    pub close: bool,
    /// Bytes taken by the head, including the blank line.
    pub head_len: usize,
}

/// Parse an HTTP/1.x response head from the start of `buf`; `Ok(None)` when
/// the blank line has not arrived yet.
pub fn parse_http_head(buf: &[u8]) -> Result<Option<HttpHead>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text =
        std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not utf-8".to_string())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an http/1 status line: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status code in {status_line:?}"))?;
    let mut head = HttpHead {
        status,
        content_length: None,
        chunked: false,
        close: version == "HTTP/1.0",
        head_len: end + 4,
    };
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                head.content_length =
                    Some(v.parse().map_err(|_| format!("bad content-length {v:?}"))?)
            }
            "transfer-encoding" => head.chunked = v.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let v = v.to_ascii_lowercase();
                if v.contains("close") {
                    head.close = true;
                } else if v.contains("keep-alive") {
                    head.close = false;
                }
            }
            _ => {}
        }
    }
    Ok(Some(head))
}

/// Where a chunked body ends in `body` (the index after the final CRLF), if it has.
pub fn chunked_end(body: &[u8]) -> Result<Option<usize>, String> {
    let mut i = 0;
    loop {
        let Some(nl) = body[i..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&body[i..i + nl])
            .map_err(|_| "chunk size not utf-8".to_string())?;
        let size_txt = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_txt, 16)
            .map_err(|_| format!("bad chunk size {size_txt:?}"))?;
        i += nl + 2;
        if size == 0 {
            // trailers until an empty line
            loop {
                let Some(nl) = body[i..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                i += nl + 2;
                if nl == 0 {
                    return Ok(Some(i));
                }
            }
        }
        if body.len() < i + size + 2 {
            return Ok(None);
        }
        i += size + 2;
    }
}

/// An `http://host[:port]/path` URL sampled with `GET` on a kept-alive connection.
#[derive(Debug)]
pub struct HttpTarget {
    url: String,
    host: String,
    addr: SocketAddr,
    request: Vec<u8>,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl HttpTarget {
    /// Parse `url` (plain `http://` only) and resolve its host.
    pub fn new(url: &str) -> Result<Self, TargetError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            TargetError::Invalid(format!("url {url:?}: only http:// is supported"))
        })?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if hostport.is_empty() {
            return Err(TargetError::Invalid(format!("url {url:?} has no host")));
        }
        let with_port = if hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            hostport.to_string()
        } else {
            format!("{hostport}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| {
                TargetError::Invalid(format!("url {url:?}: cannot resolve {with_port}: {e}"))
            })?
            .next()
            .ok_or_else(|| {
                TargetError::Invalid(format!("url {url:?}: {with_port} resolves to nothing"))
            })?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: seer-probe\r\nConnection: keep-alive\r\n\r\n").into_bytes();
        Ok(HttpTarget {
            url: url.to_string(),
            host: hostport.to_string(),
            addr,
            request,
            stream: None,
            buf: Vec::with_capacity(64 << 10),
        })
    }

    fn once(&mut self) -> Result<(), TargetError> {
        let net = |what, source| TargetError::Net {
            what,
            addr: self.addr.to_string(),
            source,
        };
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))
                .map_err(|e| net("connect to", e))?;
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            self.stream = Some(s);
        }
        let Some(s) = self.stream.as_mut() else {
            return Err(TargetError::Invalid(
                "http stream missing after connect".into(),
            ));
        };
        s.write_all(&self.request)
            .map_err(|e| net("send request to", e))?;
        self.buf.clear();
        let mut chunk = [0u8; 16 << 10];
        let head = loop {
            let n = s
                .read(&mut chunk)
                .map_err(|e| net("read response from", e))?;
            if n == 0 {
                return Err(net(
                    "read response from",
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(h) = parse_http_head(&self.buf).map_err(|reason| TargetError::Http {
                url: self.url.clone(),
                reason,
            })? {
                break h;
            }
        };
        if head.status >= 400 {
            self.stream = None;
            return Err(TargetError::Http {
                url: self.url.clone(),
                reason: format!("status {}", head.status),
            });
        }
        loop {
            let body = &self.buf[head.head_len..];
            let done = if head.chunked {
                chunked_end(body)
                    .map_err(|reason| TargetError::Http {
                        url: self.url.clone(),
                        reason,
                    })?
                    .is_some()
            } else if let Some(n) = head.content_length {
                body.len() >= n
            } else {
                false // read to EOF
            };
            if done {
                break;
            }
            let n = s
                .read(&mut chunk)
                .map_err(|e| net("read response from", e))?;
            if n == 0 {
                if head.content_length.is_none() && !head.chunked {
                    self.stream = None;
                    return Ok(());
                }
                return Err(net(
                    "read body from",
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        if head.close {
            self.stream = None;
        }
        Ok(())
    }
}

impl Target for HttpTarget {
    fn sample(&mut self) -> Result<Duration, TargetError> {
        let t0 = Instant::now();
        match self.once() {
            Ok(()) => Ok(t0.elapsed()),
            Err(TargetError::Net { .. }) if self.stream.is_some() => {
                // a kept-alive connection the server closed: retry once
                self.stream = None;
                let t0 = Instant::now();
                self.once()?;
                Ok(t0.elapsed())
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    fn describe(&self) -> String {
        format!("http {} ({})", self.url, self.host)
    }
}

/// A callback in the library: each call is one request.
pub struct FnTarget<F> {
    f: F,
    name: String,
}

impl<F: FnMut() -> Result<(), String>> FnTarget<F> {
    /// Wrap `f`, named `name` in reports.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        FnTarget {
            f,
            name: name.into(),
        }
    }
}

impl<F: FnMut() -> Result<(), String>> Target for FnTarget<F> {
    fn sample(&mut self) -> Result<Duration, TargetError> {
        let t0 = Instant::now();
        (self.f)().map_err(TargetError::Callback)?;
        Ok(t0.elapsed())
    }

    fn describe(&self) -> String {
        format!("callback {}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn http_head_golden() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";
        let h = parse_http_head(r).unwrap().unwrap();
        assert_eq!(
            h,
            HttpHead {
                status: 200,
                content_length: Some(5),
                chunked: false,
                close: false,
                head_len: r.len() - 5
            }
        );
        assert_eq!(
            parse_http_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(),
            None
        );
        let h = parse_http_head(b"HTTP/1.0 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.chunked && h.close && h.status == 404);
        assert!(parse_http_head(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_http_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_golden() {
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n\r\n"), Ok(Some(15)));
        assert_eq!(chunked_end(b"5\r\nhel"), Ok(None));
        assert_eq!(
            chunked_end(b"5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n"),
            Ok(Some(25))
        );
        assert!(chunked_end(b"zz\r\n").is_err());
    }

    #[test]
    fn url_parsing() {
        assert!(HttpTarget::new("https://x").is_err());
        assert!(HttpTarget::new("http:///p").is_err());
        let t = HttpTarget::new("http://127.0.0.1:8080/a/b").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert!(
            String::from_utf8_lossy(&t.request)
                .starts_with("GET /a/b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
        );
    }

    fn http_server(responses: usize, body: &'static str, chunked: bool) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            for _ in 0..responses {
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let resp = if chunked {
                    format!(
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                        body.len()
                    )
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                };
                s.write_all(resp.as_bytes()).unwrap();
            }
        });
        a
    }

    #[test]
    fn http_target_keeps_the_connection() {
        for chunked in [false, true] {
            let a = http_server(3, "pong", chunked);
            let mut t = HttpTarget::new(&format!("http://{a}/ping")).unwrap();
            for _ in 0..3 {
                assert!(t.sample().unwrap() < Duration::from_secs(1));
            }
            assert!(t.describe().contains("/ping"));
        }
    }

    #[test]
    fn tcp_target_round_trips() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 4];
            while s.read_exact(&mut b).is_ok() {
                s.write_all(b"pong").unwrap();
            }
        });
        let mut t = TcpTarget::new(&a.to_string(), b"ping".to_vec(), Some(4)).unwrap();
        for _ in 0..3 {
            t.sample().unwrap();
        }
        assert!(TcpTarget::new("127.0.0.1:1", vec![], None).is_err());
    }

    #[test]
    fn command_target_times_and_fails() {
        let mut t = CommandTarget::new("true", Some(0));
        assert!(t.sample().unwrap() < Duration::from_secs(5));
        let mut f = CommandTarget::new("exit 3", None);
        let err = f.sample().unwrap_err().to_string();
        assert!(err.contains("exit 3") && err.contains('3'), "{err}");
    }

    #[test]
    fn callback_target_reports_errors() {
        let mut n = 0;
        let mut t = FnTarget::new("t", || {
            n += 1;
            if n > 1 { Err("boom".into()) } else { Ok(()) }
        });
        t.sample().unwrap();
        assert!(t.sample().unwrap_err().to_string().contains("boom"));
    }
}
