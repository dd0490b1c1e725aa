//! Minimal HTTP/1.1 plumbing on hyper: a server loop with connection, header-time and lifetime
//! limits and a graceful stop, body reading with a size limit, and a one-shot JSON POST client.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::operators::OperatorAddress;

/// Most connections a server keeps open at once; further ones are closed on accept.
pub const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest life of one (keep-alive) connection; it is then closed gracefully.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Largest response body the client reads.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// The response type of the servers.
pub type HttpResponse = Response<Full<Bytes>>;

/// A response with `status`, `content_type` and `body`.
pub fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        r.headers_mut().insert(CONTENT_TYPE, value);
    }
    r
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Longer than the limit.
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    /// Not sent in time.
    #[error("request body not received within {BODY_TIMEOUT:?}")]
    Timeout,
    /// The connection failed.
    #[error("cannot read the request body: {0}")]
    Io(String),
}

/// Reads a whole request body of at most `limit` bytes within [`BODY_TIMEOUT`].
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, limit).collect()).await;
    match collected {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Ok(Err(e)) => Err(BodyError::Io(e.to_string())),
    }
}

/// Resolves once `shutdown` is true or its sender is gone.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped: stop as well.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Serves `handler` on `listener` until `shutdown` turns true (or its sender is dropped), then
/// lets open connections finish their current request.
pub async fn serve<H, F>(listener: TcpListener, mut shutdown: watch::Receiver<bool>, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    eprintln!("aggregator: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = crate::http::stopped(&mut shutdown) => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let handler = handler.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = crate::http::stopped(&mut shutdown) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(BODY_TIMEOUT, conn.as_mut()).await;
                }
                () = tokio::time::sleep(CONNECTION_LIFETIME) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(BODY_TIMEOUT, conn.as_mut()).await;
                }
            }
            drop(permit);
        });
    }
}

/// Binds a TCP listener, naming what it is for in the error.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr} for the {what}: {e}"))
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a POST failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// No connection.
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    /// The exchange failed.
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (bad host or path).
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
    /// The response body was too long or broken.
    #[error("cannot read the response body: {0}")]
    Body(String),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// POSTs `body` as JSON to `path` at `address` over a fresh connection; returns the status and
/// up to [`MAX_RESPONSE_BODY`] bytes of response body. Everything must happen within `timeout`.
pub async fn post_json(
    address: &OperatorAddress,
    path: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), PostError> {
    let exchange = async {
        let target = (address.host.as_str(), address.port);
        let stream = TcpStream::connect(target)
            .await
            .map_err(|e| PostError::Connect(format!("{}:{}", address.host, address.port), e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection is driven by its own task, ended when this exchange ends or is dropped.
        let _conn = AbortOnDrop(tokio::spawn(conn));
        let request = Request::post(path)
            .header(HOST, &address.authority)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, body.len())
            .body(Full::new(Bytes::from(body)))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let read = Limited::new(response.into_body(), MAX_RESPONSE_BODY).collect().await;
        let bytes = read.map_err(|e| PostError::Body(e.to_string()))?.to_bytes();
        Ok((status, bytes))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| PostError::Timeout(timeout))?
}
