//! A broker of a test's own, for the outage tests: freezing or killing the shared broker of
//! `scripts/test.sh` would stall every other test running in parallel. An Apache Kafka node started and
//! stopped through `scripts/broker.sh` (which stops it by the PID it recorded), frozen with SIGSTOP and
//! thawed with SIGCONT, killed with SIGKILL and restarted on its logs.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// An Apache Kafka broker (single combined node) on a free loopback port, stopped when dropped.
pub struct OwnBroker {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Its PID, as `scripts/broker.sh start` reported it.
    pub pid: u32,
    port: u16,
    dir: tempfile::TempDir,
    frozen: bool,
    overrides: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/broker.sh")
}

impl OwnBroker {
    /// Starts a broker (installed by `scripts/test.sh` on its first run).
    pub fn start() -> OwnBroker {
        OwnBroker::start_with(None, &[])
    }

    /// Starts a broker that tells its clients to connect to `advertise_port` (a [`Proxy`] in front of
    /// it) rather than to itself.
    pub fn start_advertising(advertise_port: Option<u16>) -> OwnBroker {
        OwnBroker::start_with(advertise_port, &[])
    }

    /// Starts a broker with extra broker properties (`key=value`).
    pub fn start_with(advertise_port: Option<u16>, overrides: &[&str]) -> OwnBroker {
        let dir = tempfile::tempdir().expect("tempdir");
        // A port the kernel just handed out is free unless someone takes it in between: retry then.
        for _ in 0..5 {
            let port = super::restartable_port();
            let mut args = vec!["start".to_owned(), "--port".into(), port.to_string(), "--dir".into()];
            args.push(dir.path().display().to_string());
            if let Some(p) = advertise_port {
                args.extend(["--advertise-port".to_owned(), p.to_string()]);
            }
            let out = Command::new(script())
                .args(&args)
                .env("KAFKA_OVERRIDES", overrides.join(" "))
                .env("KAFKA_HEAP", "512m")
                .output()
                .expect("run scripts/broker.sh");
            if !out.status.success() {
                eprintln!("broker.sh start on {port} failed: {}", String::from_utf8_lossy(&out.stderr));
                continue;
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::to_owned);
            let addr = field("BROKER=").expect("BROKER= line");
            let pid = field("PID=").and_then(|p| p.parse().ok()).expect("PID= line");
            return OwnBroker { addr, pid, port, dir, frozen: false, overrides: overrides.join(" ") };
        }
        panic!("could not start a broker of the test's own");
    }

    fn signal(&self, what: &str) {
        let status = Command::new(script())
            .args([what, "--port", &self.port.to_string(), "--dir", &self.dir.path().display().to_string()])
            .status()
            .expect("run scripts/broker.sh");
        assert!(status.success(), "scripts/broker.sh {what} failed");
    }

    /// SIGSTOP: the broker keeps its connections open and answers nothing (an outage without data loss).
    pub fn freeze(&mut self) {
        self.signal("freeze");
        self.frozen = true;
    }

    /// SIGCONT.
    pub fn thaw(&mut self) {
        self.signal("thaw");
        self.frozen = false;
    }

    /// SIGKILL: a crash; the logs stay on disk for [`OwnBroker::restart`].
    pub fn kill(&mut self) {
        self.signal("kill");
        self.frozen = false;
    }

    /// Starts the broker again on the same port and logs (after [`OwnBroker::kill`]).
    pub fn restart(&mut self) {
        let out = Command::new(script())
            .args(["start", "--port", &self.port.to_string(), "--dir", &self.dir.path().display().to_string()])
            .env("KAFKA_OVERRIDES", &self.overrides)
            .env("KAFKA_HEAP", "512m")
            .output()
            .expect("run scripts/broker.sh");
        assert!(out.status.success(), "restart failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        self.pid = text.lines().find_map(|l| l.strip_prefix("PID=")).and_then(|p| p.parse().ok()).expect("PID= line");
    }

    /// For a failed test's message: whether the broker's process lives, and the end of its log.
    pub fn describe(&self) -> String {
        let alive = std::path::Path::new(&format!("/proc/{}", self.pid)).exists();
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "broker PID {} on port {} {}; last lines of its log:\n{}",
            self.pid,
            self.port,
            if alive { "alive" } else { "NOT running" },
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    /// The broker's log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        // `stop` resumes a frozen broker before terminating it, and kills only the PID it recorded.
        let _ = Command::new(script())
            .args(["stop", "--port", &self.port.to_string(), "--dir", &self.dir.path().display().to_string()])
            .output();
    }
}

/// A TCP proxy in front of a broker that started with `--advertise-port` = the proxy's port, so that every
/// client connection passes through it. It forwards Kafka requests frame by frame and can drop the
/// requests that name a topic (no response ever comes): that topic becomes unreachable for the clients
/// that ask about it (metadata, offsets, fetches), while the other topics keep working — a status-topic
/// outage with the claims flowing, which freezing the one test broker cannot give.
pub struct Proxy {
    /// The port clients connect to.
    pub port: u16,
    blocked: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Request types (API keys) dropped whatever they name.
    blocked_apis: Arc<Mutex<Vec<i16>>>,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Listens on a free loopback port; call [`Proxy::forward_to`] once the broker runs.
    pub fn listen() -> (Proxy, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let proxy = Proxy {
            port,
            blocked: Arc::default(),
            blocked_apis: Arc::default(),
            dropped: Arc::default(),
            stop: Arc::default(),
            conns: Arc::default(),
        };
        (proxy, listener)
    }

    /// Starts forwarding the connections of `listener` to `upstream`.
    pub fn forward_to(&self, listener: TcpListener, upstream: String) {
        let (blocked, dropped, stop, conns) =
            (Arc::clone(&self.blocked), Arc::clone(&self.dropped), Arc::clone(&self.stop), Arc::clone(&self.conns));
        let blocked_apis = Arc::clone(&self.blocked_apis);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        conns.lock().unwrap().push(c);
                    }
                }
                let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (blocked, blocked_apis, dropped) =
                    (Arc::clone(&blocked), Arc::clone(&blocked_apis), Arc::clone(&dropped));
                // Requests: whole frames (4-byte size, then the request), each checked for a blocked name.
                std::thread::spawn(move || {
                    let mut size = [0u8; 4];
                    while c_read.read_exact(&mut size).is_ok() {
                        let n = u32::from_be_bytes(size) as usize;
                        let mut frame = vec![0u8; n];
                        if c_read.read_exact(&mut frame).is_err() {
                            break;
                        }
                        // A request starts with its API key (int16, big-endian).
                        let api = frame.get(..2).map(|k| i16::from_be_bytes([k[0], k[1]]));
                        let drop = api.is_some_and(|a| blocked_apis.lock().unwrap().contains(&a))
                            || blocked.lock().unwrap().iter().any(|b| frame.windows(b.len()).any(|w| w == &b[..]));
                        if drop {
                            dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        if s_write.write_all(&size).and_then(|()| s_write.write_all(&frame)).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(Shutdown::Both);
                });
                // Responses: copied as they come.
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(Shutdown::Both);
                });
            }
        });
    }

    /// From now on, drops every request that names `topic`.
    pub fn block(&self, topic: &str) {
        self.blocked.lock().unwrap().push(topic.as_bytes().to_vec());
    }

    /// From now on, drops every request of one type (its API key: 9 is OffsetFetch), whatever it names.
    pub fn block_api(&self, key: i16) {
        self.blocked_apis.lock().unwrap().push(key);
    }

    /// Lets every request through again.
    pub fn unblock_all(&self) {
        self.blocked.lock().unwrap().clear();
        self.blocked_apis.lock().unwrap().clear();
    }

    /// Requests dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop, and close every connection so that the copying threads end.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}
