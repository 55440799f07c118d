//! A minimal HTTP/1.1 client over keep-alive connections, light enough that the load
//! generator costs little CPU beside the server it measures.

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request to send: method, path with query, headers and body.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Request {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET",
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn form(path: impl Into<String>, pairs: &[(&str, &str)]) -> Self {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs {
            serializer.append_pair(name, value);
        }
        Self {
            method: "POST",
            path: path.into(),
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: Bytes::from(serializer.finish()),
        }
    }

    pub fn json(path: impl Into<String>, body: &serde_json::Value) -> Self {
        Self {
            method: "POST",
            path: path.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(body.to_string()),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// A response: status, headers (names in lowercase; repeated ones joined with "\n") and
/// body.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive connection to `host:port`.
///
/// Requests are written as raw HTTP/1.1 and responses parsed in place, which costs less than
/// half the CPU of a general client and so leaves more of the machine to the server.
pub struct Connection {
    authority: String,
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    input: Vec<u8>,
    /// The request being written, kept to reuse its allocation.
    output: Vec<u8>,
}

/// Maximum size of a response head in bytes. A longer head fails the request.
const MAX_HEAD: usize = 64 * 1024;

impl Connection {
    pub async fn open(authority: &str) -> Result<Self, String> {
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|error| format!("connecting to {authority} failed: {error}"))?;
        stream.set_nodelay(true).ok();
        Ok(Self {
            authority: authority.to_owned(),
            stream,
            input: Vec::with_capacity(8192),
            output: Vec::with_capacity(1024),
        })
    }

    pub async fn send(&mut self, request: &Request) -> Result<Reply, String> {
        self.write_request(request);
        self.stream
            .write_all(&self.output)
            .await
            .map_err(|error| format!("sending the request failed: {error}"))?;
        let (status, headers, head_length) = self.read_head().await?;
        self.input.drain(..head_length);
        let body = if request.method == "HEAD" || status == 204 || status == 304 {
            Bytes::new()
        } else if headers
            .get("transfer-encoding")
            .is_some_and(|coding| coding.to_ascii_lowercase().contains("chunked"))
        {
            self.read_chunked().await?
        } else if let Some(length) = headers.get("content-length") {
            let length = length
                .trim()
                .parse()
                .map_err(|_| format!("invalid content-length {length:?}"))?;
            self.read_exact(length).await?
        } else {
            self.read_to_end().await?
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn write_request(&mut self, request: &Request) {
        let output = &mut self.output;
        output.clear();
        for part in [
            request.method,
            " ",
            &request.path,
            " HTTP/1.1\r\nhost: ",
            &self.authority,
        ] {
            output.extend_from_slice(part.as_bytes());
        }
        output.extend_from_slice(b"\r\n");
        for (name, value) in &request.headers {
            for part in [name.as_str(), ": ", value, "\r\n"] {
                output.extend_from_slice(part.as_bytes());
            }
        }
        if request.method != "GET" || !request.body.is_empty() {
            output.extend_from_slice(
                format!("content-length: {}\r\n", request.body.len()).as_bytes(),
            );
        }
        output.extend_from_slice(b"\r\n");
        output.extend_from_slice(&request.body);
    }

    /// Reads until a whole response head is buffered. Returns the status, the headers and
    /// the head's length in bytes.
    async fn read_head(&mut self) -> Result<(u16, BTreeMap<String, String>, usize), String> {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut slots);
            match response.parse(&self.input) {
                Ok(httparse::Status::Complete(length)) => {
                    let status = response.code.unwrap_or_default();
                    let mut headers: BTreeMap<String, String> = BTreeMap::new();
                    for header in response.headers.iter() {
                        let value = String::from_utf8_lossy(header.value).into_owned();
                        headers
                            .entry(header.name.to_ascii_lowercase())
                            .and_modify(|existing| {
                                existing.push('\n');
                                existing.push_str(&value);
                            })
                            .or_insert(value);
                    }
                    // An interim response (100 Continue) precedes the real one.
                    if (100..200).contains(&status) {
                        self.input.drain(..length);
                        continue;
                    }
                    return Ok((status, headers, length));
                }
                Ok(httparse::Status::Partial) if self.input.len() < MAX_HEAD => {
                    self.fill().await?;
                }
                Ok(httparse::Status::Partial) => {
                    return Err(format!("response head longer than {MAX_HEAD} bytes"));
                }
                Err(error) => return Err(format!("malformed response head: {error}")),
            }
        }
    }

    async fn read_exact(&mut self, length: usize) -> Result<Bytes, String> {
        while self.input.len() < length {
            self.fill().await?;
        }
        Ok(Bytes::from(self.input.drain(..length).collect::<Vec<u8>>()))
    }

    async fn read_chunked(&mut self) -> Result<Bytes, String> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| format!("invalid chunk size {size:?}"))?;
            if size == 0 {
                // Trailers, if any, end with an empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(Bytes::from(body));
            }
            body.extend_from_slice(&self.read_exact(size).await?);
            self.read_line().await?;
        }
    }

    async fn read_line(&mut self) -> Result<String, String> {
        loop {
            if let Some(end) = self.input.windows(2).position(|pair| pair == b"\r\n") {
                let line = String::from_utf8_lossy(&self.input[..end]).into_owned();
                self.input.drain(..end + 2);
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    async fn read_to_end(&mut self) -> Result<Bytes, String> {
        let mut body = std::mem::take(&mut self.input);
        self.stream
            .read_to_end(&mut body)
            .await
            .map_err(|error| format!("reading the response failed: {error}"))?;
        Ok(Bytes::from(body))
    }

    /// Reads more bytes into the input buffer. A closed connection is an error.
    async fn fill(&mut self) -> Result<(), String> {
        let read = self
            .stream
            .read_buf(&mut self.input)
            .await
            .map_err(|error| format!("reading the response failed: {error}"))?;
        if read == 0 {
            return Err("the server closed the connection".to_owned());
        }
        Ok(())
    }
}

/// Splits `http://host:port/path?query` into `host:port` and `/path?query`.
pub fn split_url(url: &str) -> (String, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("only http URLs are supported: {url}"));
    match rest.find('/') {
        Some(index) => (rest[..index].to_owned(), rest[index..].to_owned()),
        None => (rest.to_owned(), "/".to_owned()),
    }
}

/// Sends one request on a new connection.
pub async fn once(url: &str, request: Request) -> Result<Reply, String> {
    let (authority, path) = split_url(url);
    let mut connection = Connection::open(&authority).await?;
    let request = Request { path, ..request };
    connection.send(&request).await
}
