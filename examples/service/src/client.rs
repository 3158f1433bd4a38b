//! A small HTTP/1.1 client on one keep-alive TCP connection: enough for the
//! load generator and the tests (requests with an optional JSON body;
//! responses with `Content-Length` or chunked bodies). Not a general client.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let mut conn = service::client::Connection::connect("127.0.0.1:3000").await?;
//! let response = conn.get("/users/7").await?;
//! assert_eq!(response.status, 200);
//! # Ok(())
//! # }
//! ```

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, ToSocketAddrs};

/// Longest status line or header line accepted, in bytes.
const MAX_LINE: usize = 8 * 1024;
/// Largest body accepted, in bytes.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A response: its status and body (headers are read and dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, as text (lossy UTF-8).
    pub body: String,
}

impl Response {
    /// The body parsed as JSON.
    ///
    /// # Errors
    ///
    /// A body that is not JSON.
    pub fn json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_str(&self.body)
    }
}

/// One keep-alive connection.
pub struct Connection {
    stream: BufReader<TcpStream>,
    host: String,
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl Connection {
    /// Connects to `addr` (with `TCP_NODELAY`: requests are small).
    ///
    /// # Errors
    ///
    /// A failed connect.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let host = stream.peer_addr()?.to_string();
        Ok(Connection {
            stream: BufReader::new(stream),
            host,
        })
    }

    /// `GET path`.
    ///
    /// # Errors
    ///
    /// An I/O error or a malformed response; the connection is then unusable.
    pub async fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request("GET", path, None).await
    }

    /// `method path`, with `body` sent as `application/json` when given.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(body.unwrap_or(""));
        self.stream.get_mut().write_all(head.as_bytes()).await?;
        self.read_response().await
    }

    async fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        let read = (&mut self.stream)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        if !line.ends_with('\n') {
            return Err(invalid("line too long"));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    async fn read_response(&mut self) -> io::Result<Response> {
        let status_line = self.read_line().await?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            let line = self.read_line().await?;
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(invalid(format!("bad header {line:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let n: usize = value
                    .parse()
                    .map_err(|_| invalid(format!("bad content-length {value:?}")))?;
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
        let body = match (chunked, length) {
            (true, _) => self.read_chunked().await?,
            (false, Some(n)) => self.read_exact(n).await?,
            // Every response of the service has a length or is chunked.
            (false, None) => return Err(invalid("response without a length")),
        };
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    async fn read_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if n > MAX_BODY {
            return Err(invalid(format!("body of {n} bytes is too large")));
        }
        let mut body = vec![0; n];
        self.stream.read_exact(&mut body).await?;
        Ok(body)
    }

    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, up to the blank line.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_BODY {
                return Err(invalid("chunked body too large"));
            }
            body.extend(self.read_exact(size).await?);
            if !self.read_line().await?.is_empty() {
                return Err(invalid("chunk not followed by CRLF"));
            }
        }
    }
}

/// One request on a fresh connection.
///
/// # Errors
///
/// As [`Connection::request`], or a failed connect.
pub async fn send(
    addr: impl ToSocketAddrs,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> io::Result<Response> {
    Connection::connect(addr)
        .await?
        .request(method, path, body)
        .await
}

/// The sum of the samples of `name` in Prometheus text whose labels include
/// every pair of `labels` (`name="value"`); 0 when there is none.
///
/// ```
/// let text = "# TYPE q counter\nq{query=\"user\"} 3\nq{query=\"team\"} 2\n";
/// assert_eq!(service::client::counter_sum(text, "q", &[("query", "user")]), 3.0);
/// ```
pub fn counter_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest),
                None => (series, ""),
            };
            let matches = metric == name
                && labels.iter().all(|(k, v)| {
                    // A whole label: first, or after a comma.
                    let pair = format!("{k}=\"{v}\"");
                    rest.starts_with(&pair) || rest.contains(&format!(",{pair}"))
                });
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::counter_sum;

    #[test]
    fn counters_are_summed_over_matching_labels() {
        let text = "# TYPE q counter\nq{query=\"user\"} 3\nq{query=\"team\"} 2\nqq 7\nq 1\n";
        assert_eq!(counter_sum(text, "q", &[]), 6.0);
        assert_eq!(counter_sum(text, "q", &[("query", "user")]), 3.0);
        assert_eq!(counter_sum(text, "q", &[("query", "none")]), 0.0);
        let text = "q{subquery=\"user\"} 3\nq{a=\"b\",query=\"user\"} 2\n";
        assert_eq!(counter_sum(text, "q", &[("query", "user")]), 2.0);
    }
}
