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

use crate::api::error::Error;

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
            if n.is_multiple_of(1000) {
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
    // No read route takes a body: one byte is enough to refuse it, so a
    // GET cannot make the collector buffer `max_body_bytes` before its
    // token is even looked at.
    let max = if parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD
    {
        0
    } else {
        limits.max
    };
    let mut read = Vec::new();
    let reading = async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                read.extend_from_slice(&data);
                if read.len() > max {
                    break;
                }
            }
        }
        Ok::<(), axum::Error>(())
    };
    let refused =
        |status, message: String| Error::new(status, codes::MALFORMED, message).into_response();
    match tokio::time::timeout(limits.timeout, reading).await {
        Ok(Ok(())) if max == 0 && !read.is_empty() => refused(
            StatusCode::BAD_REQUEST,
            format!("{} requests take no body", parts.method),
        ),
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

/// Authentication failures a client address may make: a token bucket per
/// address (an IPv6 address counts by its /64, which one client usually
/// holds whole) that refills at `per_minute` and is charged by each `401`.
/// An empty bucket is answered `429` before any credential is looked at,
/// so guessing tokens costs the guesser time, not the store.
pub struct FailureLimit {
    per_minute: u32,
    buckets: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

/// Addresses tracked at most; beyond it full buckets are forgotten first.
const MAX_TRACKED: usize = 100_000;

impl FailureLimit {
    /// A limit of `per_minute` failures (0: no limit).
    pub fn new(per_minute: u32) -> FailureLimit {
        FailureLimit {
            per_minute,
            buckets: Default::default(),
        }
    }

    fn key(ip: std::net::IpAddr) -> std::net::IpAddr {
        match ip {
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.into(),
                None => std::net::Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1)).into(),
            },
            v4 => v4,
        }
    }

    fn refilled(&self, b: Bucket, now: std::time::Instant) -> Bucket {
        let cap = f64::from(self.per_minute);
        let gained = now.duration_since(b.at).as_secs_f64() * cap / 60.0;
        Bucket {
            tokens: (b.tokens + gained).min(cap),
            at: now,
        }
    }

    /// Takes one failure's worth from `ip`'s bucket before its request is
    /// handled (so that requests in flight together cannot all pass);
    /// `Err(wait)` when the bucket is empty; `Ok(true)` when this took its
    /// last share. A request that does not fail gets it back
    /// ([`FailureLimit::refund`]).
    pub fn take(&self, ip: std::net::IpAddr) -> Result<bool, Duration> {
        if self.per_minute == 0 {
            return Ok(false);
        }
        let now = std::time::Instant::now();
        let cap = f64::from(self.per_minute);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let key = Self::key(ip);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            // Forget addresses whose allowance has refilled; never those
            // still limited, so that a flood of new addresses cannot reset
            // them. Still full: the newcomer goes untracked.
            buckets.retain(|_, b| self.refilled(*b, now).tokens < cap);
            if buckets.len() >= MAX_TRACKED {
                return Ok(false);
            }
        }
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: cap,
            at: now,
        });
        *b = self.refilled(*b, now);
        if b.tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - b.tokens) * 60.0 / cap));
        }
        b.tokens -= 1.0;
        Ok(b.tokens < 1.0)
    }

    /// Gives back what [`FailureLimit::take`] took, for a request that did
    /// not fail authentication.
    pub fn refund(&self, ip: std::net::IpAddr) {
        if self.per_minute == 0 {
            return;
        }
        let cap = f64::from(self.per_minute);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = buckets.get_mut(&Self::key(ip)) {
            b.tokens = (b.tokens + 1.0).min(cap);
        }
    }
}

/// Routes the failure limit does not block: the health check, and evidence,
/// which agents authenticate by signature — blocking an address there would
/// let anyone behind the same NAT as a fleet hold its evidence back.
fn exempt(path: &str) -> bool {
    path == "/healthz" || path == "/v1/evidence"
}

/// Applies [`FailureLimit`] (axum middleware). Requests without a peer
/// address (the router called in-process) are not limited.
pub async fn limit_failures(limit: Arc<FailureLimit>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(ip) = peer.filter(|_| !exempt(request.uri().path())) else {
        return next.run(request).await;
    };
    let last = match limit.take(ip) {
        Ok(last) => last,
        Err(wait) => {
            let secs = wait.as_secs().max(1);
            let mut response = Error::new(
                StatusCode::TOO_MANY_REQUESTS,
                codes::RATE_LIMITED,
                format!(
                    "too many failed authentications from this address; try again in {secs} s (auth_failures_per_minute)"
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
            return response;
        }
    };
    let response = next.run(request).await;
    if response.status() != StatusCode::UNAUTHORIZED {
        limit.refund(ip);
    } else if last {
        tracing::warn!(
            peer = %ip,
            "authentication failures from {ip} exceed auth_failures_per_minute; it is answered 429 until its allowance refills"
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    #[test]
    fn failures_empty_the_bucket_of_one_address_or_one_ipv6_slash_64() {
        let limit = FailureLimit::new(3);
        let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        // Requests in flight together each take a share before any fails.
        assert_eq!(
            (0..3).map(|_| limit.take(a).unwrap()).collect::<Vec<_>>(),
            [false, false, true],
            "the third takes the last share"
        );
        let wait = limit.take(a).expect_err("limited");
        assert!(
            wait <= Duration::from_secs(20) && wait >= Duration::from_secs(19),
            "{wait:?}"
        );
        // Requests that succeed give their share back.
        limit.refund(a);
        limit.take(a).unwrap();
        assert!(limit.take(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))).is_ok());
        // Two addresses of one /64 are one client.
        let v6 = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, last));
        for i in 0..3 {
            limit.take(v6(i)).unwrap();
        }
        assert!(limit.take(v6(99)).is_err());
        assert_eq!(FailureLimit::new(0).take(a), Ok(false));
    }
}
