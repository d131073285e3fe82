//! The API's bounds on idle and slow clients, over raw TCP against
//! all-in-one with short `[api]` timeouts: a client that sends its headers
//! a byte at a time is disconnected once `header_read_timeout` has passed
//! however steadily it sends, and so is one that sends nothing; a
//! kept-alive connection is closed after `keepalive_timeout` of idleness,
//! and not before; a body that trickles in gets 408 after
//! `body_read_timeout`, and one cut short by a half-close 400. With `max_connections` idle connections open,
//! further clients wait in the listen backlog (not served, not refused)
//! and are served once the idle ones time out.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const HEADER: u64 = 2;
const KEEPALIVE: u64 = 4;
const BODY: u64 = 2;

fn server(dir: &Path, max_connections: u32) -> Server {
    let conf = write_conf(
        dir,
        &format!(
            "[api]\nport = 0\nheader_read_timeout = {HEADER}\nkeepalive_timeout = {KEEPALIVE}\n\
             body_read_timeout = {BODY}\nmax_connections = {max_connections}\n"
        ),
    );
    let data = dir.join("data");
    start(&[
        "--config-file",
        conf.to_str().unwrap(),
        "all-in-one",
        "--data-dir",
        data.to_str().unwrap(),
    ])
}

fn connect(url: &str) -> TcpStream {
    TcpStream::connect(url.trim_start_matches("http://")).unwrap()
}

/// One answer read off a kept-alive connection: (status, body).
fn answer(s: &mut TcpStream, wait: Duration) -> Option<(u16, String)> {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while raw.len() < head_end + length {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    Some((
        status,
        String::from_utf8_lossy(&raw[head_end..head_end + length]).to_string(),
    ))
}

fn get(s: &mut TcpStream, path: &str) {
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
}

/// Whether the server closed `s` (end of stream or reset) within `wait`,
/// and when; anything it sent meanwhile is returned too.
fn closed(s: &mut TcpStream, wait: Duration) -> (Option<Duration>, Vec<u8>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < wait {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (Some(started.elapsed()), got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return (Some(started.elapsed()), got),
        }
    }
    (None, got)
}

/// Send `prefix`, then `drip` a byte every 300 ms until the server hangs
/// up; when it did, and what it answered.
fn trickle(url: &str, prefix: &str, drip: u8) -> (Duration, Vec<u8>) {
    let mut s = connect(url);
    let started = Instant::now();
    s.write_all(prefix.as_bytes()).unwrap();
    let mut got = Vec::new();
    while started.elapsed() < Duration::from_secs(20) {
        if s.write_all(&[drip]).is_err() {
            // Refused: what the server said before it hung up is still
            // there to read.
            let when = started.elapsed();
            got.extend(closed(&mut s, Duration::from_millis(500)).1);
            return (when, got);
        }
        let (gone, more) = closed(&mut s, Duration::from_millis(300));
        got.extend(more);
        if gone.is_some() {
            return (started.elapsed(), got);
        }
    }
    panic!(
        "still connected after 20 s; got {:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn slow_and_idle_clients_are_disconnected() {
    let dir = tempdir("http-limits");
    let server = server(&dir, 100);
    let url = server.url.clone();
    let bound = |d: Duration, low: u64, high: u64, what: &str| {
        eprintln!("{what}: {d:?}");
        assert!(
            d >= Duration::from_millis(low) && d <= Duration::from_secs(high),
            "{what} after {d:?}"
        );
    };

    std::thread::scope(|scope| {
        // Slowloris: headers a byte every 300 ms, faster than any per-read
        // timer would notice, never finished.
        scope.spawn(|| {
            let (after, got) = trickle(
                &url,
                "GET /v1/clustertemplates HTTP/1.1\r\nHost: test\r\nX-Slow: ",
                b'a',
            );
            bound(after, 1500, 8, "slow headers closed");
            assert!(
                !String::from_utf8_lossy(&got).starts_with("HTTP/1.1 2"),
                "slow headers were served: {:?}",
                String::from_utf8_lossy(&got)
            );
        });
        // A connection that never says anything.
        scope.spawn(|| {
            let mut s = connect(&url);
            let (after, got) = closed(&mut s, Duration::from_secs(20));
            bound(after.unwrap(), 1500, 8, "silent connection closed");
            assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        });
        // Kept alive between requests, then closed after keepalive_timeout
        // of idleness (not the shorter header time).
        scope.spawn(|| {
            let mut s = connect(&url);
            get(&mut s, "/");
            assert_eq!(answer(&mut s, Duration::from_secs(10)).unwrap().0, 200);
            std::thread::sleep(Duration::from_millis(500));
            get(&mut s, "/v1");
            assert_eq!(answer(&mut s, Duration::from_secs(10)).unwrap().0, 200);
            let (after, got) = closed(&mut s, Duration::from_secs(20));
            bound(
                after.unwrap(),
                3000,
                10,
                "idle kept-alive connection closed",
            );
            assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        });
        // A body that trickles in: 408 in upstream's error body, then closed.
        scope.spawn(|| {
            let (after, got) = trickle(
                &url,
                "POST /v1/clustertemplates HTTP/1.1\r\nHost: test\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
                b' ',
            );
            bound(after, 1500, 8, "slow body answered and closed");
            let got = String::from_utf8_lossy(&got).to_string();
            assert!(got.starts_with("HTTP/1.1 408 "), "{got}");
            assert!(
                got.to_ascii_lowercase().contains("connection: close"),
                "{got}"
            );
            let body: Value = serde_json::from_str(got.split_once("\r\n\r\n").unwrap().1).unwrap();
            let e = &body["errors"][0];
            assert_eq!(e["status"], 408, "{body}");
            assert_eq!(e["code"], "client", "{body}");
            assert_eq!(
                e["detail"],
                format!("The request body was not received within {BODY} seconds."),
                "{body}"
            );
        });
    });

    // Well-behaved clients are served throughout.
    let (status, body) = http(&url, "GET", "/v1/clustertemplates", None);
    assert_eq!(status, 200, "{body}");
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_body_cut_short_is_a_bad_request() {
    let dir = tempdir("http-short");
    let server = server(&dir, 10);
    let mut s = connect(&server.url);
    s.write_all(
        b"POST /v1/clustertemplates HTTP/1.1\r\nHost: test\r\n\
          Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\": \"x\"",
    )
    .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (status, body) = answer(&mut s, Duration::from_secs(10)).expect("an answer");
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["errors"][0]["detail"],
        "The request body is incomplete: the client stopped sending it.",
        "{body}"
    );
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn connections_over_the_cap_wait_in_the_backlog() {
    let dir = tempdir("http-cap");
    let server = server(&dir, 2);
    let url = server.url.clone();
    // Two kept-alive connections, idle after one request each: the cap.
    let mut idle: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(&url);
            get(&mut s, "/");
            assert_eq!(answer(&mut s, Duration::from_secs(10)).unwrap().0, 200);
            s
        })
        .collect();
    let idle_since = Instant::now();
    // Two more clients connect (the kernel completes the handshake) and
    // send their requests at once.
    let mut waiting: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(&url);
            write!(
                s,
                "GET /v1 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            s
        })
        .collect();
    // Not served while the idle ones hold the cap (they do for
    // keepalive_timeout), and not refused either.
    for s in &mut waiting {
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("a client over the cap was not held back: {other:?}"),
        }
    }
    // Once the idle ones time out, both are served.
    for s in &mut waiting {
        let (status, body) = answer(s, Duration::from_secs(20)).unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let served_after = idle_since.elapsed();
    eprintln!("clients over the cap served after {served_after:?}");
    assert!(
        served_after >= Duration::from_millis(KEEPALIVE * 1000 - 1000),
        "served after {served_after:?}, before the idle connections timed out"
    );
    for s in &mut idle {
        let (gone, _) = closed(s, Duration::from_secs(5));
        assert!(
            gone.is_some(),
            "an idle connection over its time stayed open"
        );
    }
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}
