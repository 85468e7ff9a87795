//! A three-node Apache Kafka cluster of the tests' own, for the fault tests of `tests/cluster.rs`:
//! started through `scripts/broker.sh cluster start` (KRaft, combined broker+controller nodes, durable
//! logs; internal topics RF 3 / min ISR 2, the project's topics RF 3 and `min.insync.replicas=2` by
//! default), its nodes killed (SIGKILL), stopped (SIGTERM, controlled shutdown), frozen (SIGSTOP),
//! thawed and started again on their logs — always by the PID the script recorded — and the partition
//! leaders read from the cluster's metadata.
//!
//! **Cutting a node off.** The cluster is *routed* (see `cluster_write` in `scripts/broker.sh`): every
//! connection between two nodes and from the clients goes through a TCP proxy of this process
//! ([`NetProxy`]), one per direction — clients to node I, node K's replication fetches from node I, node
//! K's controller traffic to node I. Cutting a node off black-holes its proxies as a network partition
//! would (bytes stop, connections hang, nothing is refused; on healing, the connections that spanned
//! the cut are closed, as their peers would have timed them out): [`Cut::Peers`] isolates it from the
//! other two nodes (replication and controller quorum, both directions) while clients still reach
//! it; [`Cut::Clients`] leaves the cluster whole and makes the node unreachable for every client. All
//! on loopback, inside this process: no firewall rule, no namespace, nothing another user of the machine
//! can see. (Network namespaces were the other way the issue allows; they need the nodes on addresses
//! other than 127.0.0.1 and every client process inside a namespace — the proxies give the same cuts
//! with the scripts and clients unchanged.)
//!
//! **One cluster per test binary**, started on first use ([`shared`]) and stopped when the process exits
//! (`atexit`), with its directory under `.tools/run/test-cluster-<port>/` (a run killed before it could
//! stop its cluster is cleaned up, by the PIDs recorded there, at the next start). Tests take it in turn:
//! [`shared`] returns a guard held for the whole test, after healing whatever the previous test left.
//! Ports: the nodes' own listeners on a private range, `CLAIMGATE_TEST_CLUSTER_PORT` (default 19710) to
//! +23; the proxies on ports the OS hands out. Heap per node: `KAFKA_HEAP` (default 384m here).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/broker.sh")
}

/// A TCP forwarder from a loopback port to one target, which can be cut like a network link.
pub struct NetProxy {
    /// The port it listens on.
    pub port: u16,
    target: u16,
    blocked: Arc<AtomicBool>,
    /// Incremented at every heal: connections of an older epoch are closed.
    epoch: Arc<AtomicU64>,
    conns: Arc<Mutex<Vec<(u64, TcpStream)>>>,
    stop: Arc<AtomicBool>,
}

impl NetProxy {
    /// Listens on a free loopback port and forwards every connection to `127.0.0.1:target`.
    pub fn start(target: u16) -> NetProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let p = NetProxy {
            port,
            target,
            blocked: Arc::default(),
            epoch: Arc::default(),
            conns: Arc::default(),
            stop: Arc::default(),
        };
        let (blocked, epoch, conns, stop) =
            (Arc::clone(&p.blocked), Arc::clone(&p.epoch), Arc::clone(&p.conns), Arc::clone(&p.stop));
        std::thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || accept_loop(listener, target, &blocked, &epoch, &conns, &stop))
            .expect("proxy thread");
        p
    }

    /// Black-holes the link: nothing passes either way, new connections are accepted and hang.
    pub fn cut(&self) {
        self.blocked.store(true, Ordering::SeqCst);
    }

    /// Lets traffic pass again; the connections that spanned the cut are closed.
    pub fn heal(&self) {
        if !self.blocked.swap(false, Ordering::SeqCst) {
            return;
        }
        let now = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|(e, s)| {
            if *e < now {
                let _ = s.shutdown(Shutdown::Both);
                false
            } else {
                true
            }
        });
    }

    /// Is the link cut?
    pub fn is_cut(&self) -> bool {
        self.blocked.load(Ordering::SeqCst)
    }

    /// The port it forwards to.
    pub fn target(&self) -> u16 {
        self.target
    }
}

impl Drop for NetProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for (_, c) in self.conns.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    target: u16,
    blocked: &Arc<AtomicBool>,
    epoch: &Arc<AtomicU64>,
    conns: &Arc<Mutex<Vec<(u64, TcpStream)>>>,
    stop: &Arc<AtomicBool>,
) {
    for client in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let _ = client.set_nodelay(true);
        let e = epoch.load(Ordering::SeqCst);
        let register = |s: &TcpStream| {
            if let Ok(c) = s.try_clone() {
                let mut all = conns.lock().unwrap_or_else(|p| p.into_inner());
                // Forget closed connections now and then: a long soak makes thousands.
                if all.len() > 512 {
                    all.retain(|(_, s)| s.peer_addr().is_ok());
                }
                all.push((e, c));
            }
        };
        if blocked.load(Ordering::SeqCst) {
            // A connection made across a cut: accepted (the SYN got through to a proxy, not to the
            // node), then nothing; closed when the link heals.
            register(&client);
            continue;
        }
        // The node is down: refuse, as its own closed port would.
        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
        let _ = server.set_nodelay(true);
        register(&client);
        register(&server);
        for (from, to) in [(&client, &server), (&server, &client)] {
            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else { continue };
            let (blocked, epoch) = (Arc::clone(blocked), Arc::clone(epoch));
            let _ = std::thread::Builder::new().name("proxy-copy".into()).spawn(move || {
                pump(from, to, &blocked, &epoch, e);
            });
        }
    }
}

/// Copies one direction of a connection; while the link is cut, holds what it read (a black hole);
/// when it heals, the connection is closed (its epoch is over).
fn pump(mut from: TcpStream, mut to: TcpStream, blocked: &AtomicBool, epoch: &AtomicU64, mine: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while blocked.load(Ordering::SeqCst) && epoch.load(Ordering::SeqCst) == mine {
            std::thread::sleep(Duration::from_millis(20));
        }
        if epoch.load(Ordering::SeqCst) != mine || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// What a node is cut off from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The other two nodes: replication and the controller quorum, both directions. Clients still
    /// reach it.
    Peers,
    /// Every client; the cluster itself stays whole.
    Clients,
}

/// The cluster's nodes are numbered 1 to 3 (their `node.id`).
pub type Node = i32;

/// The leader `md` names for `topic`/`partition` (`None`: none, or an error for it).
fn leader_in(md: &rdkafka::metadata::Metadata, topic: &str, partition: i32) -> Option<Node> {
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    let p = t.partitions().iter().find(|p| p.id() == partition)?;
    (p.error().is_none() && p.leader() > 0).then_some(p.leader())
}

/// One partition as the metadata shows it.
#[derive(Clone, Debug)]
pub struct PartitionState {
    pub id: i32,
    /// The leader; -1 when there is none.
    pub leader: Node,
    pub replicas: Vec<Node>,
    pub isr: Vec<Node>,
}

/// A three-node cluster, routed through this process's proxies.
pub struct Cluster {
    /// Bootstrap servers for clients (the client proxies).
    pub bootstrap: String,
    dir: PathBuf,
    base: u16,
    heap: String,
    overrides: String,
    /// Clients → node I (index I-1).
    clients: Vec<NetProxy>,
    /// (kind, from, to) → proxy, kind `repl` or `ctrl`.
    links: HashMap<(&'static str, Node, Node), NetProxy>,
    frozen: [bool; 3],
    /// The node cut off from its peers, if any: its own metadata is stale, not asked.
    isolated: Option<Node>,
    metadata: BaseConsumer,
    /// One metadata client per node, bootstrapped on that node alone (index I-1).
    node_metadata: Vec<BaseConsumer>,
    /// Faults done to this cluster so far, for the logs.
    pub faults: u64,
}

impl Cluster {
    /// Starts a routed cluster with its listeners on `base..base+23` and its files in `dir` (cleaned
    /// of any earlier run first). `overrides` are broker properties (`k=v`) for every node.
    pub fn start(dir: &Path, base: u16, overrides: &[&str]) -> Cluster {
        // A run killed before it stopped its cluster: stop those nodes (by their recorded PIDs).
        if dir.join("ports").exists() {
            let _ = Command::new(script()).args(["cluster", "stop", "--dir", &dir.display().to_string()]).output();
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("cluster directory");
        let node_port = |i: Node| base + (i as u16 - 1);
        // Node I's replication listener for traffic from node K.
        let repl_port = |k: Node, i: Node| base + 6 + 3 * (i as u16 - 1) + (k as u16 - 1);
        // Node I's controller listener for traffic from node K (`Q<K>`, see `cluster_write`).
        let ctrl_port = |k: Node, i: Node| base + 15 + 3 * (i as u16 - 1) + (k as u16 - 1);
        let clients: Vec<NetProxy> = (1..=3).map(|i| NetProxy::start(node_port(i))).collect();
        let mut links = HashMap::new();
        let mut routes = String::new();
        for (i, p) in clients.iter().enumerate() {
            routes.push_str(&format!("client {} {}\n", i + 1, p.port));
        }
        for k in 1..=3 {
            for i in 1..=3 {
                if k == i {
                    continue;
                }
                let repl = NetProxy::start(repl_port(k, i));
                let ctrl = NetProxy::start(ctrl_port(k, i));
                routes.push_str(&format!("repl {k} {i} {}\nctrl {k} {i} {}\n", repl.port, ctrl.port));
                links.insert(("repl", k, i), repl);
                links.insert(("ctrl", k, i), ctrl);
            }
        }
        std::fs::write(dir.join("routes"), routes).expect("routes file");
        let heap = std::env::var("KAFKA_HEAP").unwrap_or_else(|_| "384m".into());
        let overrides = overrides.join(" ");
        let started = Instant::now();
        let out = Command::new(script())
            .args(["cluster", "start", "--port", &base.to_string(), "--dir", &dir.display().to_string()])
            .env("KAFKA_HEAP", &heap)
            .env("KAFKA_OVERRIDES", &overrides)
            .output()
            .expect("run scripts/broker.sh");
        assert!(
            out.status.success(),
            "cluster start failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let bootstrap = text.lines().find_map(|l| l.strip_prefix("BROKER=")).expect("BROKER= line").to_owned();
        eprintln!("cluster: three nodes ready in {:.1} s, bootstrap {bootstrap}", started.elapsed().as_secs_f64());
        let client = |servers: &str| -> BaseConsumer {
            ClientConfig::new()
                .set("bootstrap.servers", servers)
                .set("group.id", "claimgate-tests-cluster-metadata")
                .set_log_level(RDKafkaLogLevel::Emerg)
                .create()
                .expect("metadata client")
        };
        let metadata = client(&bootstrap);
        // Straight to the node's own listener: the test's view is not subject to the clients' cut.
        let node_metadata = (1..=3).map(|i| client(&format!("127.0.0.1:{}", node_port(i)))).collect();
        Cluster {
            bootstrap,
            dir: dir.to_owned(),
            base,
            heap,
            overrides,
            clients,
            links,
            frozen: [false; 3],
            isolated: None,
            metadata,
            node_metadata,
            faults: 0,
        }
    }

    fn node_dir(&self, node: Node) -> PathBuf {
        self.dir.join(format!("node-{node}"))
    }

    fn script(&self, what: &str, node: Node) -> std::process::Output {
        let out = Command::new(script())
            .args(["node", what, "--node", &node.to_string(), "--dir", &self.dir.display().to_string()])
            .env("KAFKA_HEAP", &self.heap)
            .env("KAFKA_OVERRIDES", &self.overrides)
            // A controlled shutdown on a busy machine can take a while: SIGKILL only after this long.
            .env("KAFKA_STOP_GRACE_S", "120")
            .output()
            .expect("run scripts/broker.sh");
        assert!(
            out.status.success(),
            "scripts/broker.sh node {what} --node {node} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The PID of a running node, as the script recorded it.
    pub fn pid(&self, node: Node) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.node_dir(node).join("broker.pid")).ok()?.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        // The recorded PID is this node's broker, not a recycled one.
        let me = format!("{}/server.properties", self.node_dir(node).display());
        String::from_utf8_lossy(&cmdline).contains(&me).then_some(pid)
    }

    /// Is the node's process running?
    pub fn running(&self, node: Node) -> bool {
        self.pid(node).is_some()
    }

    /// `kill -9`: a crash; the logs stay for [`Cluster::start_node`].
    pub fn kill(&mut self, node: Node) {
        self.script("kill", node);
        self.frozen[node as usize - 1] = false;
        self.faults += 1;
    }

    /// SIGTERM and wait: the controlled shutdown an operator does before an upgrade.
    pub fn stop_node(&mut self, node: Node) {
        self.script("stop", node);
        self.frozen[node as usize - 1] = false;
        self.faults += 1;
    }

    /// Starts a stopped or killed node again on its logs; waits until its broker answers.
    pub fn start_node(&mut self, node: Node) {
        self.script("start", node);
    }

    /// SIGSTOP.
    pub fn freeze(&mut self, node: Node) {
        self.script("freeze", node);
        self.frozen[node as usize - 1] = true;
        self.faults += 1;
    }

    /// SIGCONT.
    pub fn thaw(&mut self, node: Node) {
        self.script("thaw", node);
        self.frozen[node as usize - 1] = false;
    }

    /// Cuts a node off from its peers or from the clients (see the module's documentation).
    pub fn cut(&mut self, node: Node, from: Cut) {
        match from {
            Cut::Clients => self.clients[node as usize - 1].cut(),
            Cut::Peers => {
                self.isolated = Some(node);
                for ((_, k, i), p) in &self.links {
                    if *k == node || *i == node {
                        p.cut();
                    }
                }
            }
        }
        self.faults += 1;
    }

    /// Heals every cut.
    pub fn heal(&mut self) {
        self.isolated = None;
        for p in self.clients.iter().chain(self.links.values()) {
            p.heal();
        }
    }

    /// Is any link cut?
    pub fn any_cut(&self) -> bool {
        self.clients.iter().chain(self.links.values()).any(NetProxy::is_cut)
    }

    /// The metadata of `topic` (all topics if `None`) as a node that is up, not frozen and not cut off
    /// from its peers answers it — an isolated node's own view is stale (it still names itself the
    /// leader of what it led, while the others have fenced it and elected new leaders). librdkafka asks
    /// whichever broker it likes, so the answer is taken only from a healthy one ([`Cluster::answered_by`]),
    /// asking again a few times; `None` if no healthy node answered.
    fn topic_metadata(&self, topic: Option<&str>) -> Option<rdkafka::metadata::Metadata> {
        let healthy = |n: Node| (1..=3).contains(&n) && !self.frozen[n as usize - 1] && self.isolated != Some(n);
        let from_healthy = |md: &rdkafka::metadata::Metadata| self.answered_by(md).is_some_and(healthy);
        for _ in 0..6 {
            // Every running node's client, the isolated node's too: a client asks whichever broker it
            // likes, and in CI the isolated node's client was the one a healthy node answered (node 3
            // naming the new leader) while the others' clients were answered by the isolated node.
            for n in 1..=3 {
                if self.frozen[n as usize - 1] || !self.running(n) {
                    continue;
                }
                if let Ok(md) = self.node_metadata[n as usize - 1].fetch_metadata(topic, Duration::from_secs(5))
                    && from_healthy(&md)
                {
                    return Some(md);
                }
            }
        }
        // The clients' way in (through their proxies), still only a healthy node's answer: taking any
        // node's here once let the isolated node's stale view (itself still the leader) stand for the
        // cluster's, and a failover the cluster had made went unseen for the whole wait (CI, 2026-12-07).
        self.metadata.fetch_metadata(topic, Duration::from_secs(5)).ok().filter(from_healthy)
    }

    /// The node that gave a metadata answer, as the answer names it; `None` when it names no node of
    /// the cluster (librdkafka named the answering broker's id from the first answer in a probe on one
    /// broker, 2026-12-07).
    pub fn answered_by(&self, md: &rdkafka::metadata::Metadata) -> Option<Node> {
        Some(md.orig_broker_id()).filter(|id| (1..=3).contains(id))
    }

    /// The leader of a partition as the cluster's metadata says now (`None`: no leader, or the metadata
    /// could not be read).
    pub fn leader(&self, topic: &str, partition: i32) -> Option<Node> {
        leader_in(&self.topic_metadata(Some(topic))?, topic, partition)
    }

    /// The leader of `topic`/`partition` as each running node's metadata client hears it, for failure
    /// messages: (the node asked, the node that answered, the leader it names). The nodes' views can
    /// differ for a moment after a failover, and librdkafka may take the answer from another node.
    pub fn leader_views(&self, topic: &str, partition: i32) -> Vec<(Node, Option<Node>, Option<Node>)> {
        (1..=3)
            .filter(|&n| self.running(n))
            .map(|n| match self.node_metadata[n as usize - 1].fetch_metadata(Some(topic), Duration::from_secs(5)) {
                Ok(md) => (n, self.answered_by(&md), leader_in(&md, topic, partition)),
                Err(_) => (n, None, None),
            })
            .collect()
    }

    /// Every partition of `topic`: leader, replicas, in-sync replicas.
    pub fn partitions(&self, topic: &str) -> Option<Vec<PartitionState>> {
        let md = self.topic_metadata(Some(topic))?;
        let t = md.topics().iter().find(|t| t.name() == topic)?;
        if t.error().is_some() {
            return None;
        }
        Some(
            t.partitions()
                .iter()
                .map(|p| PartitionState {
                    id: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                })
                .collect(),
        )
    }

    /// Creates `topics` (4 partitions, replication factor 3, the brokers' `min.insync.replicas` of 2)
    /// with their replicas placed by hand: partition P on nodes `1 + (P + shift + i) % 3` for i = 0, 1, 2,
    /// the first being its preferred leader. The scenarios place the claims topic with shift 0 and the
    /// outputs with shift 1, so that the preferred leader of an output partition never leads the claims
    /// partition that feeds it (the cluster's own placement starts each topic at a random node: a third of
    /// the time every output partition shared its leader with its claims partition, and the output-leader
    /// test had nothing to kill). Panics if a topic cannot be created.
    pub fn create_placed(&self, topics: &[String], shift: usize) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<_> =
            ClientConfig::new().set("bootstrap.servers", &self.bootstrap).create().expect("admin client");
        let placement: Vec<Vec<Node>> =
            (0..4).map(|p| (0..3).map(|i| 1 + ((p + shift + i) % 3) as Node).collect()).collect();
        let rows: Vec<&[Node]> = placement.iter().map(Vec::as_slice).collect();
        let new: Vec<NewTopic<'_>> =
            topics.iter().map(|t| NewTopic::new(t, 4, TopicReplication::Variable(&rows))).collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let results = rt.block_on(admin.create_topics(new.iter(), &opts)).expect("create topics");
        for r in results {
            if let Err((t, e)) = r {
                panic!("cannot create {t}: {e}");
            }
        }
    }

    /// Moves every partition of `topics` back to its preferred leader (the first replica of its
    /// assignment), as `kafka-leader-election.sh --election-type preferred` would, through librdkafka's
    /// `ElectLeaders` (rdkafka 0.39 does not wrap it); then waits until the metadata shows each partition
    /// led by its preferred replica. A partition already led by it is no error (ELECTION_NOT_NEEDED).
    pub fn elect_preferred_leaders(&self, topics: &[String]) -> Result<(), String> {
        use rdkafka::bindings as rd;
        use std::ffi::{CStr, CString};
        let mut names = Vec::new();
        for t in topics {
            let count = self.partitions(t).ok_or_else(|| format!("no metadata for {t}"))?.len() as i32;
            names.push((CString::new(t.as_str()).expect("topic name"), count));
        }
        let rk = self.metadata.client().native_ptr();
        // SAFETY: every object created here is destroyed here, after the one call that uses it; the
        // event's results are read before the event is destroyed.
        let outcome = unsafe {
            let list = rd::rd_kafka_topic_partition_list_new(16);
            for (name, count) in &names {
                for p in 0..*count {
                    rd::rd_kafka_topic_partition_list_add(list, name.as_ptr(), p);
                }
            }
            let request =
                rd::rd_kafka_ElectLeaders_new(rd::rd_kafka_ElectionType_t::RD_KAFKA_ELECTION_TYPE_PREFERRED, list);
            rd::rd_kafka_topic_partition_list_destroy(list);
            let options = rd::rd_kafka_AdminOptions_new(rk, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ELECTLEADERS);
            let queue = rd::rd_kafka_queue_new(rk);
            rd::rd_kafka_ElectLeaders(rk, request, options, queue);
            let event = rd::rd_kafka_queue_poll(queue, 60_000);
            let outcome = if event.is_null() {
                Err("no answer to ElectLeaders within 60 s".to_owned())
            } else if rd::rd_kafka_event_error(event) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                Err(CStr::from_ptr(rd::rd_kafka_event_error_string(event)).to_string_lossy().into_owned())
            } else {
                let result = rd::rd_kafka_event_ElectLeaders_result(event);
                let mut n = 0usize;
                let partitions = rd::rd_kafka_ElectLeaders_result_partitions(result, &mut n);
                let mut failed = Vec::new();
                for i in 0..n {
                    let error = rd::rd_kafka_topic_partition_result_error(*partitions.add(i));
                    let code = rd::rd_kafka_error_code(error);
                    if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                        && code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_ELECTION_NOT_NEEDED
                    {
                        failed.push(CStr::from_ptr(rd::rd_kafka_error_string(error)).to_string_lossy().into_owned());
                    }
                }
                if failed.is_empty() { Ok(()) } else { Err(format!("ElectLeaders failed: {failed:?}")) }
            };
            if !event.is_null() {
                rd::rd_kafka_event_destroy(event);
            }
            rd::rd_kafka_queue_destroy(queue);
            rd::rd_kafka_AdminOptions_destroy(options);
            rd::rd_kafka_ElectLeaders_destroy(request);
            outcome
        };
        outcome?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let preferred = topics
                .iter()
                .all(|t| self.partitions(t).is_some_and(|ps| ps.iter().all(|p| p.replicas.first() == Some(&p.leader))));
            if preferred {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not every partition led by its preferred replica 30 s after the election:\n{}",
                    self.describe(topics)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Brokers the metadata lists (registered and unfenced).
    pub fn brokers(&self) -> Vec<Node> {
        self.topic_metadata(None).map(|md| md.brokers().iter().map(|b| b.id()).collect()).unwrap_or_default()
    }

    /// Waits until the leader of `topic`/`partition` is a live node other than `old`; returns it.
    pub fn wait_new_leader(&self, topic: &str, partition: i32, old: Node, wait: Duration) -> Option<Node> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some(l) = self.leader(topic, partition)
                && l != old
            {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }

    /// Waits until every node runs, none is frozen or cut, the metadata lists all three brokers, and
    /// every partition of `topics` has a leader and all three replicas in sync. False if `wait` passed.
    pub fn wait_healthy(&self, topics: &[String], wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            let mut ok = (1..=3).all(|n| self.running(n)) && self.frozen == [false; 3] && !self.any_cut();
            ok = ok && self.brokers().len() == 3;
            for t in topics {
                if !ok {
                    break;
                }
                ok = self
                    .partitions(t)
                    .is_some_and(|ps| ps.iter().all(|p| p.leader > 0 && p.isr.len() == p.replicas.len()));
            }
            if ok {
                return true;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        false
    }

    /// Makes the cluster whole again: heals cuts, thaws, starts stopped nodes; then waits until it is
    /// healthy for `topics`. Panics if it does not get there.
    pub fn restore(&mut self, topics: &[String]) {
        self.heal();
        for n in 1..=3 {
            if self.frozen[n as usize - 1] {
                self.thaw(n);
            }
        }
        for n in 1..=3 {
            if !self.running(n) {
                self.start_node(n);
            }
        }
        assert!(
            self.wait_healthy(topics, Duration::from_secs(180)),
            "the cluster did not become whole again within 180 s:\n{}",
            self.describe(topics)
        );
    }

    /// What the metadata says of the nodes and of `topics`, for failure messages.
    pub fn describe(&self, topics: &[String]) -> String {
        let mut s =
            format!("brokers {:?}; running {:?}\n", self.brokers(), (1..=3).map(|n| self.pid(n)).collect::<Vec<_>>());
        for t in topics {
            s.push_str(&format!("{t}: {:?}\n", self.partitions(t)));
        }
        s
    }

    /// The node the KRaft quorum has elected its leader (the active controller), as the quorum-state
    /// files of the nodes that are up, not frozen and not cut off say: the one of the latest epoch.
    pub fn quorum_leader(&self) -> Option<Node> {
        let mut best: Option<(i64, Node)> = None;
        for n in 1..=3 {
            if !self.running(n) || self.frozen[n as usize - 1] || self.isolated == Some(n) {
                continue;
            }
            let path = self.node_dir(n).join("data/__cluster_metadata-0/quorum-state");
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            let (Some(epoch), Some(leader)) = (v["leaderEpoch"].as_i64(), v["leaderId"].as_i64()) else { continue };
            if leader > 0 && best.is_none_or(|(e, _)| epoch > e) {
                best = Some((epoch, leader as Node));
            }
        }
        best.map(|(_, l)| l)
    }

    /// The real ports node `node` listens on: its broker listener, its controller listeners and its
    /// replication listeners (see `cluster_write` in `scripts/broker.sh`).
    fn real_ports(&self, node: Node) -> Vec<u16> {
        let i = node as u16 - 1;
        let mut ports = vec![self.base + i, self.base + 3 + i];
        for k in 0..3 {
            ports.push(self.base + 6 + 3 * i + k);
            ports.push(self.base + 15 + 3 * i + k);
        }
        ports
    }

    /// Connections from one node's process straight to another node's real ports, around the proxies
    /// (which a cut would then miss), as `(from, to, port)`: read from `/proc` (the node's sockets, and
    /// the established TCP connections with their remote ports).
    pub fn unrouted_connections(&self) -> Vec<(Node, Node, u16)> {
        let mut established: HashMap<u64, u16> = HashMap::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                if f.len() < 10 || f[3] != "01" {
                    continue;
                }
                let Some(port) = f[2].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()) else {
                    continue;
                };
                if let Ok(inode) = f[9].parse::<u64>() {
                    established.insert(inode, port);
                }
            }
        }
        let mut found = Vec::new();
        for from in 1..=3 {
            let Some(pid) = self.pid(from) else { continue };
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else { continue };
                let target = target.to_string_lossy().into_owned();
                let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse::<u64>().ok())
                else {
                    continue;
                };
                let Some(&port) = established.get(&inode) else { continue };
                for to in (1..=3).filter(|&to| to != from) {
                    if self.real_ports(to).contains(&port) {
                        found.push((from, to, port));
                    }
                }
            }
        }
        found.sort_unstable();
        found
    }

    /// A node's broker log.
    pub fn log_text(&self, node: Node) -> String {
        std::fs::read_to_string(self.node_dir(node).join("broker.log")).unwrap_or_default()
    }

    /// Lines of every node's log matching `needle`, for the fault tests' "visible in the logs".
    pub fn log_lines(&self, node: Node, needle: &str) -> Vec<String> {
        self.log_text(node).lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
    }

    /// The port clients reach `node` at (its proxy).
    pub fn client_port(&self, node: Node) -> u16 {
        self.clients[node as usize - 1].port
    }

    /// The first port of the nodes' range.
    pub fn base_port(&self) -> u16 {
        self.base
    }

    /// Stops the three nodes (together: see BROKER.md) and removes the directory.
    pub fn shutdown(&mut self) {
        let _ = Command::new(script()).args(["cluster", "stop", "--dir", &self.dir.display().to_string()]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static SHARED: OnceLock<Mutex<Cluster>> = OnceLock::new();
static SHARED_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn stop_shared_at_exit() {
    if let Some(dir) = SHARED_DIR.get() {
        // The cluster's Mutex may be held by a test that panicked: stop through the script, by the
        // PIDs recorded in the directory, without it.
        let _ = Command::new(script()).args(["cluster", "stop", "--dir", &dir.display().to_string()]).output();
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The test binary's cluster, started on first use (broker `overrides` apply only then), restored to
/// health for `topics` (may be empty), and held by this test until the guard is dropped.
pub fn shared(overrides: &[&str]) -> MutexGuard<'static, Cluster> {
    let m = SHARED.get_or_init(|| {
        let base: u16 = std::env::var("CLAIMGATE_TEST_CLUSTER_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(19710);
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(".tools/run/test-cluster-{base}"));
        let _ = SHARED_DIR.set(dir.clone());
        // SAFETY: registers a plain extern "C" function with no arguments, as atexit(3) requires.
        unsafe {
            libc::atexit(stop_shared_at_exit);
        }
        Mutex::new(Cluster::start(&dir, base, overrides))
    });
    let mut c = m.lock().unwrap_or_else(|p| p.into_inner());
    c.restore(&[]);
    c
}
