//! HTTP for operators, on `hyper`: the agent's and the master's `/state` (JSON from the
//! typed structs of [`state`], schema in docs/http.md) and `/metrics` (Prometheus text
//! from `prometheus-client`, [`metrics`]), served on the roles' own ports, and the
//! client the CLI asks a master's `/state` with (docs/design.md D15-D17).
//!
//! [`serve`] and [`get`] are generic over the stream, so a TLS stream (or the
//! simulator's) can carry them as well as a TCP one.

pub mod metrics;
pub mod state;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An answer to an operator's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: String,
}

impl Response {
    /// A response.
    pub fn new(status: u16, content_type: &str, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: content_type.to_owned(),
            body: body.into(),
        }
    }

    /// `404`, naming the paths there are.
    pub fn not_found() -> Response {
        Response::new(404, "text/plain", "not found: try /state or /metrics\n")
    }

    /// `200` with `value` as JSON.
    pub fn json(value: &impl serde::Serialize) -> Response {
        match serde_json::to_string(value) {
            Ok(body) => Response::new(200, "application/json", body),
            Err(error) => Response::new(500, "text/plain", format!("{error}\n")),
        }
    }
}

/// Serves one HTTP/1.1 request on `stream` (keep-alive off: the connection closes after
/// the answer), reading at most `head_bytes_max` (at least 8 KiB) of its head. `answer`
/// is given the request's path; a method other than `GET` or `HEAD` is answered `405`
/// without asking it (docs/design.md D15).
pub async fn serve<S, F, A>(stream: S, head_bytes_max: usize, answer: F) -> Result<(), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Fn(String) -> A,
    A: Future<Output = Response>,
{
    let service = hyper::service::service_fn(|request: hyper::Request<hyper::body::Incoming>| {
        let asked = matches!(*request.method(), hyper::Method::GET | hyper::Method::HEAD)
            .then(|| answer(request.uri().path().to_owned()));
        async move {
            let response = match asked {
                Some(answer) => answer.await,
                None => Response::new(405, "text/plain", "only GET is served\n"),
            };
            Ok::<_, Infallible>(into_hyper(response))
        }
    });
    hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .max_buf_size(head_bytes_max.max(8 * 1024))
        .serve_connection(TokioIo::new(stream), service)
        .await
}

fn into_hyper(response: Response) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(Bytes::from(response.body)));
    *out.status_mut() = hyper::StatusCode::from_u16(response.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = hyper::header::HeaderValue::from_str(&response.content_type) {
        out.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    out
}

/// `GET path` on `stream` (to `host`); the status code and the body.
pub async fn get<S>(stream: S, host: &str, path: &str) -> Result<(u16, String), String>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("HTTP handshake: {error}"))?;
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONNECTION, "close")
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|error| format!("request for {path}: {error}"))?;
    let exchange = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| format!("sending the request: {error}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| format!("reading the answer: {error}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    // The connection is driven beside the exchange; it ends once the answer is read.
    let (result, _) = tokio::join!(exchange, connection);
    result
}

/// A stream that yields `prefix` before what `inner` reads: the bytes a reader took off
/// a connection before it knew the connection speaks HTTP.
pub struct Rewind<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

impl<S> Rewind<S> {
    /// `inner`, read after `prefix`.
    pub fn new(prefix: Vec<u8>, inner: S) -> Rewind<S> {
        Rewind {
            prefix,
            offset: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.offset < self.prefix.len() {
            let rest = &self.prefix[self.offset..];
            let count = rest.len().min(buffer.remaining());
            buffer.put_slice(&rest[..count]);
            self.offset += count;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(context, buffer)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(context, data)
    }
    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_is_answered_and_a_post_refused() {
        for (method, status) in [("GET", 200), ("POST", 405)] {
            let (client, server) = tokio::io::duplex(4096);
            let served = serve(server, 8192, |path| async move {
                Response::new(200, "text/plain", format!("you asked {path}"))
            });
            let asked = async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut client = client;
                client
                    .write_all(format!("{method} /state HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut text = String::new();
                client.read_to_string(&mut text).await.unwrap();
                text
            };
            let (result, text) = tokio::join!(served, asked);
            result.unwrap();
            assert!(text.starts_with(&format!("HTTP/1.1 {status}")), "{text}");
            if status == 200 {
                assert!(text.ends_with("you asked /state"), "{text}");
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_client_reads_what_the_server_serves_after_a_rewind() {
        let (client, server) = tokio::io::duplex(4096);
        // The server's reader already took "GET " off the connection.
        let server = async move {
            use tokio::io::AsyncReadExt;
            let mut server = server;
            let mut first = [0u8; 4];
            server.read_exact(&mut first).await.unwrap();
            assert_eq!(&first, b"GET ");
            serve(
                Rewind::new(first.to_vec(), server),
                8192,
                |path| async move {
                    Response::new(200, "application/json", format!("{{\"path\":\"{path}\"}}"))
                },
            )
            .await
        };
        let (served, got) = tokio::join!(server, get(client, "x", "/metrics"));
        served.unwrap();
        assert_eq!(got.unwrap(), (200, r#"{"path":"/metrics"}"#.to_owned()));
    }
}
