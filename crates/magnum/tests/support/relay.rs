//! A TCP relay in front of a server that a test can take away in the two
//! ways a network does:
//!
//! - [`Relay::down`]: the server is gone. Every relayed connection is
//!   closed and the port stops listening, so new connections are refused.
//!   The port stays bound meanwhile (bound, not listening): were it let go,
//!   another process's ephemeral port could take it and the relay could
//!   never come back, which happened in CI.
//! - [`Relay::stall`]: the server is behind a black hole. Relayed
//!   connections stay open but nothing crosses them any more, ever (as
//!   when a firewall forgets their state); new connections are accepted
//!   and then hear nothing.
//!
//! [`Relay::up`] relays new connections again; stalled ones stay stalled.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Down,
    Stalled,
}

/// One relayed connection: both ends, and whether it is stalled.
struct Link {
    client: TcpStream,
    server: TcpStream,
    stalled: Arc<AtomicBool>,
}

struct State {
    mode: Mode,
    links: Vec<Link>,
    /// Connections accepted while stalled, kept open and never answered.
    held: Vec<TcpStream>,
}

pub struct Relay {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// Relay 127.0.0.1:<port> to `target` (`host:port`).
    pub fn start(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Up,
            links: Vec::new(),
            held: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, done, target) = (state.clone(), stop.clone(), target.to_string());
        std::thread::spawn(move || accept_loop(listener, port, &target, &shared, &done));
        Relay { port, state, stop }
    }

    pub fn up(&self) {
        self.state.lock().unwrap().mode = Mode::Up;
    }

    pub fn down(&self) {
        let mut state = self.state.lock().unwrap();
        state.mode = Mode::Down;
        for link in state.links.drain(..) {
            let _ = link.client.shutdown(Shutdown::Both);
            let _ = link.server.shutdown(Shutdown::Both);
        }
        for held in state.held.drain(..) {
            let _ = held.shutdown(Shutdown::Both);
        }
    }

    pub fn stall(&self) {
        let mut state = self.state.lock().unwrap();
        state.mode = Mode::Stalled;
        for link in &state.links {
            link.stalled.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.down();
    }
}

fn accept_loop(
    listener: TcpListener,
    port: u16,
    target: &str,
    state: &Mutex<State>,
    stop: &AtomicBool,
) {
    let mut listener = Some(listener);
    // While down: the port, bound and not listening.
    let mut _hold = None;
    while !stop.load(Ordering::SeqCst) {
        let mode = state.lock().unwrap().mode;
        // Down: not listening at all, so connecting is refused.
        if mode == Mode::Down {
            if let Some(l) = listener.take() {
                drop(l);
                _hold = Some(port_socket(port).expect("the relay's port was taken at once"));
            }
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => {
                let l = port_socket(port)
                    .and_then(|s| s.listen(128).map(|()| TcpListener::from(s)))
                    .expect("listening again on the relay's port");
                _hold = None;
                listener.insert(l)
            }
        };
        l.set_nonblocking(true).unwrap();
        let client = match l.accept() {
            Ok((client, _)) => client,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        client.set_nonblocking(false).unwrap();
        let mut st = state.lock().unwrap();
        match st.mode {
            Mode::Down => {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
            Mode::Stalled => {
                st.held.push(client);
                continue;
            }
            Mode::Up => {}
        }
        let Ok(server) = TcpStream::connect(target) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let stalled = Arc::new(AtomicBool::new(false));
        pump(
            client.try_clone().unwrap(),
            server.try_clone().unwrap(),
            stalled.clone(),
        );
        pump(
            server.try_clone().unwrap(),
            client.try_clone().unwrap(),
            stalled.clone(),
        );
        st.links.push(Link {
            client,
            server,
            stalled,
        });
    }
}

/// A socket bound to 127.0.0.1:`port`, sharing it (SO_REUSEADDR) with
/// another bound socket as long as neither listens.
fn port_socket(port: u16) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    Ok(s)
}

/// Copy `from` to `to` until `from` ends; once stalled, swallow instead.
fn pump(mut from: TcpStream, mut to: TcpStream, stalled: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if stalled.load(Ordering::SeqCst) {
                continue;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        if !stalled.load(Ordering::SeqCst) {
            let _ = to.shutdown(Shutdown::Write);
        }
    });
}
