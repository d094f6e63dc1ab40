//! What a client may cost before it has proved anything: a cap on open
//! connections, and deadlines for the TLS handshake, the first request,
//! each request's headers and its body. Without them a few slow or idle
//! sockets (slowloris) hold file descriptors and buffers for ever and the
//! agents behind them cannot get in (docs/api.md, "Connection limits").

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use annexa_evidence::api::codes;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::accept::Accept;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::Error;

/// An acceptor that admits at most `max` connections at a time; one over
/// is closed at once rather than queued, so the flood costs no memory.
#[derive(Clone)]
pub struct Capped<A> {
    inner: A,
    slots: Arc<Semaphore>,
    refused: Arc<AtomicU64>,
}

impl<A> Capped<A> {
    /// Caps `inner` at `max` open connections.
    pub fn new(inner: A, max: usize) -> Capped<A> {
        Capped {
            inner,
            slots: Arc::new(Semaphore::new(max)),
            refused: Arc::new(AtomicU64::new(0)),
        }
    }
}

type Accepted<T, S> = Pin<Box<dyn Future<Output = io::Result<(T, S)>> + Send>>;

impl<A, I, S> Accept<I, S> for Capped<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
{
    type Stream = A::Stream;
    type Service = Held<A::Service>;
    type Future = Accepted<A::Stream, Held<A::Service>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            let n = self.refused.fetch_add(1, Ordering::Relaxed);
            // One line per 1000 refusals: a flood must not flood the log.
            if n % 1000 == 0 {
                tracing::warn!(
                    refused = n + 1,
                    "connection refused: max_connections open (collector.toml)"
                );
            }
            drop(stream);
            return Box::pin(async { Err(io::Error::other("max_connections reached")) });
        };
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            Ok((
                stream,
                Held {
                    inner: service,
                    _slot: Arc::new(permit),
                },
            ))
        })
    }
}

/// A connection's service, holding its slot until the connection (and so
/// every clone of its service) is gone.
#[derive(Clone)]
pub struct Held<S> {
    inner: S,
    _slot: Arc<OwnedSemaphorePermit>,
}

impl<S, R> tower_service::Service<R> for Held<S>
where
    S: tower_service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.inner.call(request)
    }
}

/// The deadline for reading a request's body, checked before any handler
/// (and any credential check) sees it: a body trickled in a byte at a time
/// is answered 408. Reading stops one byte past `max`, so that the
/// handler's own size check answers an oversized body as the API's 413.
#[derive(Clone, Copy)]
pub struct BodyLimits {
    /// Time for the whole body.
    pub timeout: Duration,
    /// Largest body, in bytes (`max_body_bytes`).
    pub max: usize,
}

/// Reads the body within [`BodyLimits`] (axum middleware).
pub async fn read_body(limits: BodyLimits, request: Request, next: Next) -> Response {
    let (parts, mut body) = request.into_parts();
    let mut read = Vec::new();
    let reading = async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                read.extend_from_slice(&data);
                if read.len() > limits.max {
                    break;
                }
            }
        }
        Ok::<(), axum::Error>(())
    };
    let refused =
        |status, message: String| Error::new(status, codes::MALFORMED, message).into_response();
    match tokio::time::timeout(limits.timeout, reading).await {
        Ok(Ok(())) => next.run(Request::from_parts(parts, Body::from(read))).await,
        Ok(Err(e)) => refused(
            StatusCode::BAD_REQUEST,
            format!("reading the request body: {e}"),
        ),
        Err(_) => refused(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within body_timeout_seconds ({} s)",
                limits.timeout.as_secs()
            ),
        ),
    }
}
