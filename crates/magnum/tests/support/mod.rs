//! Helpers shared by the program-level tests: running `magnum` and other
//! programs with deadlines, plain HTTP exchanges, the peers virtualenv.

#![allow(dead_code)]

pub mod cloud;
pub mod prom;
pub mod relay;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const MAGNUM: &str = env!("CARGO_BIN_EXE_magnum");

pub fn bin(name: &str) -> PathBuf {
    Path::new(MAGNUM).with_file_name(name)
}

pub fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("magnum-{tag}-{}", uuid_str()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn uuid_str() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}-{}", std::process::id(), t.as_nanos())
}

/// Run a program to completion with a deadline (generous: starting a
/// Python service on a loaded 2-core machine takes a while).
pub fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .env_remove("MAGNUM_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running server, killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub log: String,
    /// Everything the server wrote to stderr after it started.
    later: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Every log line so far.
    pub fn logs(&self) -> String {
        format!("{}{}", self.log, self.later.lock().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `magnum <args>` and wait for its "listening on" line.
pub fn start(args: &[&str]) -> Server {
    start_until(args, "listening on ")
}

/// Start `magnum <args>` and wait for a stderr line containing `marker`;
/// the URL after "listening on " (if any) is the server's.
pub fn start_until(args: &[&str], marker: &str) -> Server {
    start_env(args, &[], marker)
}

/// `magnum --config-file <conf> all-in-one` with its data under `dir` and
/// the test build's fake cloud under `dir/cloud`.
#[allow(dead_code)] // not every test binary uses each helper
pub fn all_in_one_on_fake_cloud(dir: &Path, conf: &Path) -> Server {
    let cloud = dir.join("cloud");
    start_env(
        &[
            "--config-file",
            conf.to_str().unwrap(),
            "all-in-one",
            "--data-dir",
            dir.join("data").to_str().unwrap(),
        ],
        &[("MAGNUM_FAKE_CLOUD", cloud.to_str().unwrap())],
        "listening on ",
    )
}

/// [`start_until`] with extra environment variables.
pub fn start_env(args: &[&str], env: &[(&str, &str)], marker: &str) -> Server {
    let mut child = Command::new(MAGNUM)
        .args(args)
        .env_remove("MAGNUM_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains(marker) {
                    let url = line
                        .split("listening on ")
                        .nth(1)
                        .and_then(|rest| rest.split_whitespace().next())
                        .unwrap_or_default()
                        .trim_end_matches('/')
                        .to_string();
                    // Keep draining stderr so the server never blocks on it.
                    let later = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
                    let sink = later.clone();
                    std::thread::spawn(move || {
                        while let Ok(line) = rx.recv() {
                            if let Ok(mut l) = sink.lock() {
                                l.push_str(&line);
                                l.push('\n');
                            }
                        }
                    });
                    return Server {
                        child,
                        url,
                        log,
                        later,
                    };
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("magnum exited early ({status}):\n{log}");
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("magnum never logged {marker:?}:\n{log}");
}

/// The identity headers test requests carry: an admin of project
/// `default`, what all-in-one on a loopback address takes a request without
/// them for. `magnum api` without authentication refuses requests without
/// them (403), as upstream does.
pub const IDENTITY: &str = "X-User-Id: admin\r\nX-User-Name: admin\r\nX-Project-Id: default\r\n\
                            X-Project-Name: default\r\nX-Roles: admin,member,reader\r\n";

/// A plain HTTP/1.1 exchange over any stream, as [`IDENTITY`]; (status, body).
pub fn exchange(
    stream: &mut (impl Read + Write),
    host: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let body = body.unwrap_or("");
    // A peer that hangs up early (plain HTTP on the TLS port) is an answer too.
    let _ = write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{IDENTITY}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    answer_of(stream)
}

pub fn http(url: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let host = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    exchange(&mut s, host, method, path, body)
}

pub fn write_conf(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("magnum.conf");
    std::fs::write(&path, text).unwrap();
    path
}

/// The real `openstack` client of the peers virtualenv, in a clean
/// environment (what it needs of one: PATH, HOME, a UTF-8 locale, SHELL).
pub fn openstack_command() -> Command {
    let mut cmd = Command::new(venv().join("bin/openstack"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("LANG", "C.UTF-8")
        .env("SHELL", "/bin/bash");
    cmd
}

/// Run the real `openstack <args>` against `endpoint` with no
/// authentication, isolated from the caller's OS_* environment.
#[allow(dead_code)] // not every test binary uses each helper
pub fn osc(endpoint: &str, args: &[&str]) -> Output {
    let mut cmd = openstack_command();
    cmd.args(["--os-auth-type", "none", "--os-endpoint", endpoint])
        .args(args);
    run(&mut cmd)
}

/// [`osc`], which must succeed; its standard output.
#[allow(dead_code)]
pub fn ok(endpoint: &str, args: &[&str]) -> String {
    let out = osc(endpoint, args);
    assert!(
        out.status.success(),
        "openstack {args:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// [`osc`], which must succeed, its output read as JSON (`-f json`).
#[allow(dead_code)]
pub fn ok_json(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let stdout = ok(endpoint, args);
    // `create` prints a line of its own before the document.
    let start = stdout.find(['{', '[']).unwrap_or(0);
    serde_json::from_str(&stdout[start..])
        .unwrap_or_else(|e| panic!("openstack {args:?}: not JSON ({e}):\n{stdout}"))
}

/// The peers virtualenv: `MAGNUM_PEER_VENV`, else made by `scripts/peers.sh`.
pub fn venv() -> PathBuf {
    if let Some(v) = std::env::var_os("MAGNUM_PEER_VENV") {
        return PathBuf::from(v);
    }
    peers_venv(None)
}

/// Another set of peers: the virtualenv `scripts/peers.sh NAME` makes
/// (cached; `scripts/test` builds it before the tests run).
pub fn named_venv(name: &str) -> PathBuf {
    peers_venv(Some(name))
}

/// The real `openstack` client of `venv`, in the clean environment of
/// [`openstack_command`].
pub fn openstack_command_in(venv: &Path) -> Command {
    let openstack = venv.join("bin/openstack");
    assert!(
        openstack.exists(),
        "{} is missing: run scripts/peers.sh",
        openstack.display()
    );
    let mut cmd = Command::new(openstack);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("LANG", "C.UTF-8")
        .env("SHELL", "/bin/bash");
    cmd
}

fn peers_venv(name: Option<&str>) -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peers.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/peers.sh {} failed: {}",
        name.unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
}

/// Poll `GET path` on `url` until `done` holds for the JSON body (or the
/// status, for a 404); panics with the last body after `secs` seconds.
pub fn wait_for(
    url: &str,
    path: &str,
    secs: u64,
    done: impl Fn(u16, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    while Instant::now() < deadline {
        let (status, body) = http(url, "GET", path, None);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        if done(status, &v) {
            return v;
        }
        last = format!("{status} {body}");
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("GET {path} never got there; last: {last}");
}

/// An HTTP/1.1 exchange with extra request headers; (status, response
/// headers lower-cased, body).
pub fn http_with(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    // A path in `url` comes before `path`.
    let rest = url.trim_start_matches("http://");
    let (host, path) = match rest.split_once('/') {
        Some((host, base)) => (host, format!("/{base}{path}")),
        None => (rest, path.to_string()),
    };
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let hdrs: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = hdrs
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, hdrs, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A proxy in front of the API at `target` (`http://host:port`) that adds
/// [`IDENTITY`] to every request, for clients that send no identity (the
/// `openstack` client with `--os-auth-type none`) against `magnum api`. One
/// request per connection: each is sent on with `Connection: close`.
/// Its own `http://127.0.0.1:port` comes back; it lives as long as the test.
pub fn identity_proxy(target: &str) -> String {
    let target = target
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let target = target.clone();
            std::thread::spawn(move || proxy_one(client, &target));
        }
    });
    url
}

fn proxy_one(mut client: std::net::TcpStream, target: &str) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut out = format!("{first}\r\n{IDENTITY}Connection: close\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    let Ok(mut server) = std::net::TcpStream::connect(target) else {
        return;
    };
    if server.write_all(out.as_bytes()).is_err() {
        return;
    }
    // The body (if any) one way, the answer the other, until the server
    // has answered and hung up.
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Both);
}

/// `GET path` with no identity headers at all; (status, body).
/// The status and body of the HTTP answer read from `stream` to its end
/// (status 0 when there was none).
fn answer_of(stream: &mut impl Read) -> (u16, String) {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).to_string();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub fn bare_get(url: &str, path: &str) -> (u16, String) {
    let host = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    answer_of(&mut s)
}

/// On a fake-cloud server: a template `t` made by a request whose request
/// id comes back, then a cluster `c1` from it, waited for until
/// CREATE_COMPLETE. (The template request's id, the cluster's uuid.)
pub fn template_and_cluster(url: &str) -> (String, String) {
    let (s, headers, b) = http_with(
        url,
        "POST",
        "/v1/clustertemplates",
        &[],
        Some(
            r#"{"name": "t", "coe": "kubernetes", "image_id": "fcos", "driver": "fake", "labels": {"fake_seconds": "0"}}"#,
        ),
    );
    assert_eq!(s, 201, "{b}");
    let request = headers
        .iter()
        .find(|(k, _)| k == "x-openstack-request-id")
        .map(|(_, v)| v.clone())
        .unwrap();
    let (s, b) = http(
        url,
        "POST",
        "/v1/clusters",
        Some(r#"{"name": "c1", "cluster_template_id": "t"}"#),
    );
    assert_eq!(s, 202, "{b}");
    let cluster = serde_json::from_str::<serde_json::Value>(&b).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(url, &format!("/v1/clusters/{cluster}"), 30, |_, v| {
        v["status"] == "CREATE_COMPLETE"
    });
    (request, cluster)
}

/// The operation on `cluster` that a conductor has claimed, once one has
/// (within 20 s).
pub async fn claimed_operation(db: &magnum_db::Database, cluster: &str) -> magnum_db::Operation {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ops = db.operations_of(cluster).await.unwrap();
        if let Some(op) = ops.into_iter().find(|o| o.owner.is_some()) {
            return op;
        }
        assert!(Instant::now() < deadline, "nobody claimed the operation");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST path` with a JSON body, which must be accepted (201 or 202): the
/// body of the answer.
pub fn created(url: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, text) = http(url, "POST", path, Some(&body.to_string()));
    assert!(status == 201 || status == 202, "{status} {text}");
    serde_json::from_str(&text).unwrap()
}
