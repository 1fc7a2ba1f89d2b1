//! The load driver's HTTP/1.1 side: URLs, one keep-alive connection, a client that follows
//! nothing by itself, and a browser (cookie jar + redirects). Hand-written and minimal on
//! purpose: the driver must cost far less per request than the servers it measures, and
//! the same code talks to ours and to the peer.

use super::*;

/// An `http://` URL split for a raw HTTP/1.1 request.
#[derive(Clone, Debug)]
pub(crate) struct Url {
    pub(crate) authority: String,
    pub(crate) target: String,
}

impl Url {
    pub(crate) fn parse(raw: &str) -> Res<Self> {
        let rest = raw
            .strip_prefix("http://")
            .ok_or_else(|| format!("not http: {raw}"))?;
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let host = match authority.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        // Loopback only: a load test never leaves this machine.
        let loopback = host == "localhost"
            || host == "[::1]"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(format!("refusing non-loopback host {host}"));
        }
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.into()
        };
        Ok(Self {
            authority: authority.into(),
            target,
        })
    }

    /// Resolves a `Location` or form `action` against this URL.
    pub(crate) fn join(&self, reference: &str) -> Res<Self> {
        if reference.starts_with("http://") || reference.starts_with("https://") {
            Self::parse(reference)
        } else if reference.starts_with('/') {
            Self::parse(&format!("http://{}{reference}", self.authority))
        } else if reference.is_empty() {
            Ok(self.clone())
        } else {
            let dir = self.target.split('?').next().unwrap_or("/");
            let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
            Self::parse(&format!("http://{}{dir}{reference}", self.authority))
        }
    }

    pub(crate) fn origin(&self) -> String {
        format!("http://{}", self.authority)
    }
}

pub(crate) struct Response {
    pub(crate) status: u16,
    /// The response head as received (status line and header lines).
    pub(crate) head: String,
    /// Name and value of each header, as byte ranges of `head`.
    pub(crate) headers: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn headers_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(k, _)| self.head[k.clone()].eq_ignore_ascii_case(name))
            .map(|(_, v)| &self.head[v.clone()])
    }
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).next()
    }
    pub(crate) fn text(&self) -> std::borrow::Cow<'_, str> {
        match std::str::from_utf8(&self.body) {
            Ok(s) => s.into(),
            Err(_) => String::from_utf8_lossy(&self.body),
        }
    }
}

/// One kept-alive connection and what has been read from it but not yet consumed.
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    /// Read buffer: `buf[start..end]` is read and not yet consumed; `buf[end..]` is room
    /// for the next read (zeroed once, when the buffer grows, not per read).
    pub(crate) buf: Vec<u8>,
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// The peer closed its side.
    pub(crate) eof: bool,
}

impl Conn {
    pub(crate) async fn connect(authority: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
            eof: false,
        })
    }

    pub(crate) async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match self.stream.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.stream.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(crate) fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more bytes; `Ok(false)` at the end of the stream.
    pub(crate) async fn fill(&mut self) -> io::Result<bool> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = loop {
            match self.stream.try_read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.stream.readable().await?,
                Err(e) => return Err(e),
            }
        };
        self.end += n;
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// Up to and including the next CRLF (the line without it).
    pub(crate) async fn line(&mut self) -> Res<String> {
        loop {
            if let Some(i) = self.unread().windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.unread()[..i]).into_owned();
                self.consume(i + 2);
                return Ok(line);
            }
            if !self.fill().await.map_err(|e| e.to_string())? {
                return Err("connection closed".into());
            }
        }
    }

    /// Exactly `n` bytes.
    pub(crate) async fn exact(&mut self, n: usize, into: &mut Vec<u8>) -> Res<()> {
        while self.unread().len() < n {
            if !self.fill().await.map_err(|e| e.to_string())? {
                return Err("connection closed".into());
            }
        }
        into.extend_from_slice(&self.unread()[..n]);
        self.consume(n);
        Ok(())
    }

    pub(crate) async fn read_response(&mut self) -> Res<Response> {
        // The head: everything up to the empty line.
        let end = loop {
            if let Some(i) = self.unread().windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if !self.fill().await.map_err(|e| e.to_string())? {
                return Err("connection closed".into());
            }
        };
        let raw = &self.unread()[..end];
        let head = match std::str::from_utf8(raw) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(raw).into_owned(),
        };
        self.consume(end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut headers = Vec::new();
        let mut at = status_line.len() + 2;
        for l in lines {
            if let Some(colon) = l.find(':') {
                let trimmed = |r: std::ops::Range<usize>| {
                    let s = &l[r.clone()];
                    let lead = s.len() - s.trim_start().len();
                    at + r.start + lead..at + r.start + lead + s.trim().len()
                };
                headers.push((trimmed(0..colon), trimmed(colon + 1..l.len())));
            }
            at += l.len() + 2;
        }
        let mut r = Response {
            status,
            head,
            headers,
            body: Vec::new(),
        };
        if r.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let line = self.line().await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| "bad chunk size")?;
                let mut chunk = Vec::new();
                self.exact(size + 2, &mut chunk).await?;
                r.body.extend_from_slice(&chunk[..size]);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(len) = r
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            let mut body = Vec::with_capacity(len);
            self.exact(len, &mut body).await?;
            r.body = body;
        } else if status >= 200 && status != 204 && status != 304 {
            // Delimited by the end of the connection.
            while self.fill().await.map_err(|e| e.to_string())? {}
            r.body = self.unread().to_vec();
            self.consume(self.unread().len());
        }
        Ok(r)
    }
}

/// Keep-alive connections of one worker, one per authority.
#[derive(Default)]
pub(crate) struct Http {
    pub(crate) conns: HashMap<String, Conn>,
    /// The request head being written (reused).
    pub(crate) head: String,
}

impl Http {
    pub(crate) async fn send(
        &mut self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Res<Response> {
        use std::fmt::Write as _;
        let head = &mut self.head;
        head.clear();
        let _ = write!(
            head,
            "{method} {} HTTP/1.1\r\nHost: {}\r\n",
            url.target, url.authority
        );
        for (k, v) in headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        if !body.is_empty() || method == "POST" {
            let _ = write!(head, "Content-Length: {}\r\n", body.len());
        }
        head.push_str("\r\n");
        // A kept-alive connection the server closed meanwhile fails on first use: retry
        // once on a new one, as browsers do.
        for attempt in 0..2 {
            let fresh = !self.conns.contains_key(&url.authority);
            if fresh {
                let c = Conn::connect(&url.authority)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                self.conns.insert(url.authority.clone(), c);
            }
            let conn = self.conns.get_mut(&url.authority).expect("just inserted");
            let result = async {
                if conn.eof {
                    return Err("connection closed".to_owned());
                }
                conn.write_all(self.head.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                if !body.is_empty() {
                    conn.write_all(body).await.map_err(|e| e.to_string())?;
                }
                conn.read_response().await
            }
            .await;
            match result {
                Ok(r) => {
                    if r.header("connection")
                        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                        || conn.eof
                    {
                        self.conns.remove(&url.authority);
                    }
                    return Ok(r);
                }
                Err(e) => {
                    self.conns.remove(&url.authority);
                    if fresh || attempt == 1 {
                        return Err(format!("{method} {}: {e}", url.target));
                    }
                }
            }
        }
        unreachable!("the loop returns")
    }
}

/// A fresh browser: a cookie jar (one loopback "site", so names are enough) and its
/// connections.
#[derive(Default)]
pub(crate) struct Browser {
    pub(crate) cookies: Vec<(String, String)>,
}

impl Browser {
    pub(crate) async fn request(
        &mut self,
        http: &mut Http,
        method: &str,
        url: &Url,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Res<Response> {
        let mut cookie = String::new();
        for (i, (k, v)) in self.cookies.iter().enumerate() {
            if i > 0 {
                cookie.push_str("; ");
            }
            cookie.push_str(k);
            cookie.push('=');
            cookie.push_str(v);
        }
        let mut headers = extra.to_vec();
        if !cookie.is_empty() {
            headers.push(("Cookie", &cookie));
        }
        let r = http.send(method, url, &headers, body).await?;
        for set in r.headers_named("set-cookie") {
            let pair = set.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                let expired = set.to_ascii_lowercase().contains("max-age=0");
                self.cookies.retain(|(k, _)| k != name.trim());
                if !expired {
                    self.cookies
                        .push((name.trim().to_owned(), value.trim().to_owned()));
                }
            }
        }
        Ok(r)
    }
}
