//! Slow and hostile clients against a real collector over TLS: idle
//! sockets by the thousand, headers and bodies trickled a byte at a time,
//! oversized headers, and more connections than the cap. Each is cut off
//! within the configured deadlines while an agent keeps delivering.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Collector, Host};
use rustls_pki_types::ServerName;

/// Deadlines short enough for a test: 2 s for handshake, first request
/// and headers, 2 s for a body.
const LIMITS: &str = "header_timeout_seconds = 2\nbody_timeout_seconds = 2\n";

fn tls_config(c: &Collector) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(c.ca_path()).expect("the collector's CA");
    Arc::new(annexa_tests::load::tls_config(&pem).expect("a client trusting the CA"))
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect_tls(c: &Collector, config: &Arc<rustls::ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(("127.0.0.1", c.port())).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("a read timeout");
    let name = ServerName::try_from("127.0.0.1").expect("a server name");
    let conn = rustls::ClientConnection::new(config.clone(), name).expect("a TLS client");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("the TLS handshake");
    }
    tls
}

/// Sends `chunks` one by one `every` apart until the server closes the
/// connection; returns how long that took and what the server said.
fn trickle(tls: &mut Tls, chunks: &[&[u8]], every: Duration) -> (Duration, String) {
    let started = Instant::now();
    for chunk in chunks {
        if tls.write_all(chunk).and_then(|()| tls.flush()).is_err() {
            break;
        }
        std::thread::sleep(every);
        if started.elapsed() > Duration::from_secs(20) {
            panic!("still open after 20 s of trickling");
        }
    }
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

/// True once the server has closed `tcp` (read gives end of file or a
/// reset) within `within`.
fn closed_within(mut tcp: &TcpStream, within: Duration) -> bool {
    tcp.set_read_timeout(Some(within)).expect("a read timeout");
    let mut byte = [0u8; 1];
    match tcp.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn ten_thousand_idle_connections_are_dropped_and_agents_get_through() {
    let c = Collector::start_with(LIMITS);
    let host = Host::enrolled(&c, "");
    let idle: Vec<TcpStream> = (0..10_000)
        .map(|i| {
            TcpStream::connect(("127.0.0.1", c.port()))
                .unwrap_or_else(|e| panic!("idle connection {i}: {e} (raise ulimit -n to 20000)"))
        })
        .collect();
    // While they sit there, an agent enrolls, scans and delivers.
    let started = Instant::now();
    host.run_once_ok();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "an agent's delivery took {took:?} beside 10,000 idle sockets"
    );
    // Nothing was sent on them: the handshake deadline (2 s) closes every one.
    std::thread::sleep(Duration::from_secs(3));
    let open = idle
        .iter()
        .filter(|s| !closed_within(s, Duration::from_millis(1)))
        .count();
    assert_eq!(
        open, 0,
        "{open} idle connections still open after the 2 s deadline"
    );
}

#[test]
fn slow_headers_slow_bodies_and_huge_headers_are_cut_off() {
    let c = Collector::start_with(LIMITS);
    let host = Host::enrolled(&c, "");
    let config = tls_config(&c);

    // Slowloris: a request line, then a header byte every 300 ms.
    let mut tls = connect_tls(&c, &config);
    let mut chunks: Vec<&[u8]> = vec![b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"];
    chunks.extend(std::iter::repeat_n(&b"X"[..], 100));
    let (took, _) = trickle(&mut tls, &chunks, Duration::from_millis(300));
    assert!(
        took < Duration::from_secs(6),
        "trickled headers held the connection for {took:?}"
    );

    // A connection that completes TLS and never sends a request.
    let mut tls = connect_tls(&c, &config);
    let (took, _) = trickle(&mut tls, &[], Duration::ZERO);
    assert!(
        took < Duration::from_secs(6),
        "a silent TLS connection stayed {took:?}"
    );

    // A body promised at 1000 bytes and sent a byte every 300 ms: 408.
    let mut tls = connect_tls(&c, &config);
    let mut chunks: Vec<&[u8]> = vec![
        b"POST /v1/evidence HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
    ];
    // Five bytes in 1.5 s, then the client waits for the answer: writing
    // on after the server answered would have the answer lost to a reset.
    chunks.extend(std::iter::repeat_n(&b"{"[..], 5));
    let (took, answer) = trickle(&mut tls, &chunks, Duration::from_millis(300));
    assert!(
        took < Duration::from_secs(6),
        "a trickled body held the connection for {took:?}"
    );
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a trickled body was answered {answer:?}"
    );
    assert!(answer.contains("body_timeout_seconds"), "{answer}");

    // A header of 1 MiB is refused, not buffered.
    let mut tls = connect_tls(&c, &config);
    let mut request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 1 << 20));
    request.extend_from_slice(b"\r\n\r\n");
    let (_, answer) = trickle(&mut tls, &[&request], Duration::ZERO);
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 431")
            || answer.starts_with("HTTP/1.1 400"),
        "a 1 MiB header was answered {:?}",
        answer.lines().next()
    );

    // Through all of it the agent delivers.
    host.run_once_ok();
}

#[test]
fn connections_over_max_connections_are_closed_at_once() {
    let c = Collector::start_with(&format!("{LIMITS}max_connections = 20\n"));
    let host = Host::enrolled(&c, "");
    let held: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", c.port())).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let over = TcpStream::connect(("127.0.0.1", c.port())).expect("connect");
    assert!(
        closed_within(&over, Duration::from_secs(1)),
        "the 21st connection was not closed at once"
    );
    // Once the idle ones are dropped by the deadline, agents get in again.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        held.iter()
            .all(|s| closed_within(s, Duration::from_millis(1)))
    );
    host.run_once_ok();
    assert!(
        c.log().contains("connection refused: max_connections open"),
        "{}",
        c.log()
    );
}

#[test]
fn a_get_with_a_body_is_refused_before_its_token_is_looked_at() {
    let c = Collector::start();
    // A wrong token: the body is refused before the token is looked at.
    let wrong = format!("annexa-api-{}", "2".repeat(43));
    let r = c.request("GET", "/v1/hosts", Some(&wrong), Some(vec![b'x'; 1024]));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("GET requests take no body"),
        "{}",
        r.text()
    );
    assert_eq!(
        c.request("GET", "/v1/hosts", Some(&c.admin), None).status,
        200
    );
}
