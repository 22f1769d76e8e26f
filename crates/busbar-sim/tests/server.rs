//! The daemon's protocol (the sans-IO `busbar-server` session) under
//! deterministic simulation with fault injection: honest clients, readers
//! that stop or crawl, half-closes, disconnects mid-frame, garbage, the OS
//! refusing to pass fds (`ETOOMANYREFS`), split writes and reads, and time
//! jumping past deadlines, all chosen by a seeded RNG.
//!
//! Checked for every seed: no panic; the session's bookkeeping holds after
//! every step (`Server::check_invariants`: parked waits, per-uid usage,
//! endpoint owners, output within the limit); every request an honest,
//! still-connected client sent gets exactly one reply, real or synthetic;
//! each listener sees each sender's announcements in send order; and when
//! every client has gone, the session holds nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use busbar_kernel::{
    BindArgs, Credentials, EndpointId, Errno, KernelConfig, Message, MessageId, Nanos, Outgoing,
    Quota, Request, Response, SendArgs,
};
use busbar_server::{ConnId, Limits, Privilege, Server, Status, WriteError};
use busbar_sim::run_seeds;
use busbar_wire::{
    FLAG_READABLE, FrameReader, GOODBYE, RESPONSE, WAIT_FOREVER, WAKE, emit_hello, emit_request,
    parse_response,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const MS: Nanos = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Reads everything, answers every request it gets, stays to the end.
    Honest,
    /// Stops reading at some point (and may never read again).
    Stopped,
    /// Writes and reads in tiny pieces, and may half-close or vanish.
    Flaky,
    /// Sends garbage now and then.
    Hostile,
}

struct Client {
    conn: ConnId,
    kind: Kind,
    reader: FrameReader,
    /// Bytes written by the client, not yet delivered to the session.
    to_send: Vec<u8>,
    seq: u32,
    /// Our endpoints (after Open's answer).
    eps: Vec<u32>,
    /// Requests of ours the bus accepted: (endpoint, id) -> replies seen.
    requests: HashMap<(u32, MessageId), u32>,
    /// Sends in flight: seq -> (endpoint, is a request).
    sends: HashMap<u32, (u32, bool)>,
    /// Replies in flight: seq -> what they answer (tried again if refused
    /// for a full quota, as a replier should).
    replies: HashMap<u32, (u32, Message)>,
    /// Receives in flight: seq -> endpoint.
    recvs: HashMap<u32, u32>,
    /// Requests to us, to answer: (endpoint, the request).
    to_answer: Vec<(u32, Message)>,
    /// Last serial seen per (our endpoint, sender endpoint), for order.
    last_serial: HashMap<(u32, EndpointId), u32>,
    stopped: bool,
    gone: bool,
    greeted: bool,
}

thread_local! {
    static TRACE: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn trace(s: String) {
    TRACE.with(|t| t.borrow_mut().push(s));
}

struct World {
    rng: SmallRng,
    server: Server,
    now: Nanos,
    clients: Vec<Client>,
}

fn limits() -> Limits {
    Limits {
        max_connections: 64,
        max_connections_per_uid: 6,
        max_endpoints_per_connection: 4,
        max_endpoints_per_uid: 12,
        max_bindings_per_uid: 40,
        max_parked_per_connection: 3,
        max_output: 8 * 1024,
        max_unclaimed_fds_per_connection: 8,
        max_fds_per_uid: 64,
        max_partial_bytes_per_uid: 64 * 1024,
        max_inline_data: 1500,
        max_data_memfds_per_uid: 4,
        max_data_memfds: 8,
        max_frame: Limits::frame_for_message_size(2000),
        hello_timeout: 50 * MS,
        linger_timeout: 50 * MS,
    }
}

impl World {
    fn new(seed: u64) -> Self {
        let config = KernelConfig {
            default_queue_limit: 8,
            max_message_size: 2000,
            absolute_max_message_size: 2000,
            quota: Quota {
                messages: 200,
                bytes: 64 * 1024,
                handles: 64,
                fds: 64,
            },
            ..KernelConfig::default()
        };
        let privilege = Privilege {
            daemon_uid: 1000,
            ..Privilege::default()
        };
        let server = Server::new(config, limits(), privilege, seed, Box::new(|_, _| {})).unwrap();
        Self {
            rng: SmallRng::seed_from_u64(seed),
            server,
            now: 0,
            clients: Vec::new(),
        }
    }

    fn connect(&mut self, kind: Kind, uid: u32) {
        let creds = Credentials {
            pid: 100 + self.clients.len() as u32,
            uid,
            gid: uid,
        };
        let Ok(conn) = self.server.handle_connect(self.now, creds) else {
            return;
        };
        let mut hello = Vec::new();
        if kind != Kind::Hostile || self.rng.random_bool(0.7) {
            emit_hello(&mut hello);
        }
        self.clients.push(Client {
            conn,
            kind,
            reader: FrameReader::new(1 << 24),
            to_send: hello,
            seq: 0,
            eps: Vec::new(),
            requests: HashMap::new(),
            sends: HashMap::new(),
            recvs: HashMap::new(),
            replies: HashMap::new(),
            to_answer: Vec::new(),
            last_serial: HashMap::new(),
            stopped: false,
            gone: false,
            greeted: false,
        });
    }

    fn request(&mut self, i: usize, ep: u32, req: Request, wait: Option<u32>) {
        let c = &mut self.clients[i];
        c.seq += 1;
        match &req {
            Request::Send(a) => {
                c.sends.insert(c.seq, (ep, a.message.is_request()));
            }
            Request::Recv(()) | Request::RecvBatch(_) => {
                c.recvs.insert(c.seq, ep);
            }
            _ => {}
        }
        emit_request(&mut c.to_send, c.seq, 0, ep, &req, wait, 0);
    }

    /// Sends a message from endpoint `ep` of client `i`.
    fn send(&mut self, i: usize, ep: u32, message: Outgoing) {
        let req = Request::Send(SendArgs {
            message,
            deadline: None,
        });
        self.request(i, ep, req, None);
    }

    /// One thing a client does.
    fn act(&mut self, i: usize) {
        let (greeted, kind, neps) = {
            let c = &self.clients[i];
            (c.greeted, c.kind, c.eps.len())
        };
        if !greeted {
            return;
        }
        if kind == Kind::Hostile && self.rng.random_bool(0.05) {
            let n = self.rng.random_range(1..64);
            let junk: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
            self.clients[i].to_send.extend_from_slice(&junk);
            return;
        }
        if neps == 0 || self.rng.random_bool(0.05) {
            return self.request(i, 0, Request::Open(Credentials::default()), None);
        }
        let ep = self.clients[i].eps[self.rng.random_range(0..neps)];
        let k = self.rng.random_range(0..3);
        match self.rng.random_range(0..100) {
            0..15 => {
                let name = format!("$.s.{k}");
                self.request(
                    i,
                    ep,
                    Request::Bind(BindArgs {
                        name: name.into(),
                        replier: false,
                    }),
                    None,
                );
            }
            15..22 => {
                let name = format!("$.r.{k}");
                self.request(
                    i,
                    ep,
                    Request::Bind(BindArgs {
                        name: name.into(),
                        replier: true,
                    }),
                    None,
                );
            }
            22..45 => {
                let msg = Outgoing::announcement(
                    &format!("$.s.{k}"),
                    vec![0u8; self.rng.random_range(0..600)],
                );
                self.send(i, ep, msg);
            }
            45..60 => {
                let msg = Outgoing::request(&format!("$.r.{k}"), vec![1u8; 16]);
                self.send(i, ep, msg);
            }
            60..85 => {
                let wait = match self.rng.random_range(0..3) {
                    0 => None,
                    1 => Some(self.rng.random_range(0..30)),
                    _ => Some(WAIT_FOREVER),
                };
                let req = if self.rng.random_bool(0.5) {
                    Request::Recv(())
                } else {
                    Request::RecvBatch(4)
                };
                self.request(i, ep, req, wait);
            }
            85..95 => self.answer_one(i),
            95..97 if kind != Kind::Honest => {
                self.request(i, ep, Request::Close(()), None);
                self.clients[i].eps.retain(|&e| e != ep);
            }
            _ => {
                let msg = Outgoing::announcement("$.s.0", vec![2u8; 8])
                    .with_flags(busbar_kernel::Flags::ALL_OR_WAIT);
                self.send(i, ep, msg);
            }
        }
    }

    fn answer_one(&mut self, i: usize) {
        if let Some((ep, req)) = self.clients[i].to_answer.pop() {
            let reply = Outgoing::reply_to(&req, vec![3u8; 4]);
            self.send(i, ep, reply);
            let c = &mut self.clients[i];
            c.replies.insert(c.seq, (ep, req));
        }
    }

    /// Delivers what a client wrote, in random pieces.
    fn deliver_input(&mut self, i: usize) {
        let c = &mut self.clients[i];
        if c.gone || c.to_send.is_empty() {
            return;
        }
        let piece = if c.kind == Kind::Flaky {
            self.rng.random_range(1..=16)
        } else {
            c.to_send.len()
        };
        let n = piece.min(c.to_send.len());
        let bytes: Vec<u8> = c.to_send.drain(..n).collect();
        let conn = c.conn;
        if self.server.wants_read(conn) {
            self.server.handle_input(self.now, conn, &bytes, Vec::new());
        } else {
            // Not read now: it waits in the socket.
            let c = &mut self.clients[i];
            let rest = std::mem::take(&mut c.to_send);
            c.to_send = bytes;
            c.to_send.extend(rest);
        }
    }

    /// Lets the session write to every dirty connection, as a shell would.
    fn flush(&mut self) {
        while let Some(conn) = self.server.poll_dirty() {
            let Some(i) = self.clients.iter().position(|c| c.conn == conn && !c.gone) else {
                continue;
            };
            loop {
                let reading = !self.clients[i].stopped;
                let Some((bytes, fds)) = self.server.poll_transmit(conn) else {
                    break;
                };
                if !reading {
                    break;
                }
                let _ = &fds;
                if self.rng.random_bool(0.03) {
                    self.server
                        .handle_write_error(self.now, conn, WriteError::TooManyRefs);
                    break;
                }
                let n = if self.clients[i].kind == Kind::Flaky {
                    self.rng.random_range(1..=bytes.len())
                } else {
                    bytes.len()
                };
                let chunk = bytes[..n].to_vec();
                let nfds = fds.len();
                self.server.handle_sent(self.now, conn, n, nfds);
                self.clients[i].reader.buffer().extend_from_slice(&chunk);
            }
            if self.server.status(conn) == Status::Closed {
                self.clients[i].gone = true;
            }
            self.read_frames(i);
        }
    }

    /// The client reads the frames it has received.
    fn read_frames(&mut self, i: usize) {
        loop {
            let c = &mut self.clients[i];
            let f = match c.reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => panic!("the server sent a bad frame: {e}"),
            };
            match f.header.kind {
                busbar_wire::WELCOME => c.greeted = true,
                WAKE | GOODBYE => {}
                k if k & RESPONSE != 0 => {
                    let _ = f.header.flags & FLAG_READABLE;
                    let result = parse_response(&f).expect("a well-formed response");
                    let seq = f.header.seq;
                    let sent = c.sends.remove(&seq);
                    let answered = c.replies.remove(&seq);
                    if let Some((ep, m)) = &answered {
                        trace(format!(
                            "client {i} ep {ep} reply to {:?} from {}: {:?}",
                            m.id,
                            m.from,
                            result.as_ref().map(|_| ())
                        ));
                    }
                    if let (Some(a), Err(Errno::EDQUOT | Errno::EBUSY | Errno::EALREADY)) =
                        (answered, &result)
                    {
                        c.to_answer.push(a);
                    }
                    let at = c.recvs.remove(&seq).unwrap_or(0);
                    match result {
                        Ok(Response::Open(ep)) => c.eps.push(ep.0),
                        Ok(Response::BusStats(st)) => {
                            for e in &st.endpoint_stats {
                                trace(format!("STATS {e:?}"));
                            }
                        }
                        Ok(Response::Send(id)) => {
                            if let Some((ep, true)) = sent {
                                c.requests.insert((ep, id), 0);
                            }
                        }
                        Ok(Response::Recv(Some(m))) => self.received(i, at, m),
                        Ok(Response::RecvBatch(v)) => {
                            for m in v {
                                self.received(i, at, m);
                            }
                        }
                        _ => {}
                    }
                }
                k => panic!("unexpected frame kind {k:#x}"),
            }
        }
    }

    /// A message our endpoint `ep` took.
    fn received(&mut self, i: usize, ep: u32, m: Message) {
        let c = &mut self.clients[i];
        if m.in_reply_to != MessageId::NONE {
            // Our copy of a reply to one of our requests (a listener's copy
            // of someone else's reply is addressed to them).
            if m.to.0 == ep
                && let Some(n) = c.requests.get_mut(&(ep, m.in_reply_to))
            {
                *n += 1;
            }
            return;
        }
        if m.wants_us_to_reply() {
            trace(format!(
                "client {i} ep {ep} got request {:?} from {}",
                m.id, m.from
            ));
            c.to_answer.push((ep, m));
            return;
        }
        if !m.is_synthetic() && !m.is_request() {
            let last = c.last_serial.entry((ep, m.from)).or_insert(0);
            // Equal: one copy per matching binding.
            assert!(
                m.id.serial >= *last,
                "announcements from {} out of order at {ep}",
                m.from
            );
            *last = m.id.serial;
        }
    }

    fn step(&mut self) {
        // Now and then a new client, of a random kind and user.
        if self.clients.len() < 24 && self.rng.random_bool(0.05) {
            let kind = [
                Kind::Honest,
                Kind::Honest,
                Kind::Stopped,
                Kind::Flaky,
                Kind::Hostile,
            ][self.rng.random_range(0..5)];
            let uid = [1000, 2000, 3000][self.rng.random_range(0..3)];
            self.connect(kind, uid);
        }
        let n = self.clients.len();
        if n == 0 {
            return;
        }
        let i = self.rng.random_range(0..n);
        if self.clients[i].gone {
            return;
        }
        let conn = self.clients[i].conn;
        let kind = self.clients[i].kind;
        match self.rng.random_range(0..100) {
            0..50 => self.act(i),
            50..80 => self.deliver_input(i),
            80..83 if kind == Kind::Stopped => self.clients[i].stopped = !self.clients[i].stopped,
            83..84 if kind == Kind::Flaky => {
                // Vanish, maybe mid-frame.
                self.server
                    .handle_disconnect(self.now, conn, "sim: vanished");
                self.clients[i].gone = true;
            }
            84..85 if kind == Kind::Flaky => {
                self.deliver_input(i);
                self.server.handle_eof(self.now, conn);
            }
            85..92 => {
                self.now += self.rng.random_range(0..20 * MS);
                self.server.handle_timeout(self.now);
            }
            _ => self.server.handle_writable(conn),
        }
        self.flush();
        self.server.check_invariants(64 * 1024).unwrap();
    }
}

fn scenario(seed: u64) {
    TRACE.with(|t| t.borrow_mut().clear());
    let mut w = World::new(seed);
    for _ in 0..3 {
        w.connect(Kind::Honest, 1000);
    }
    for _ in 0..3000 {
        w.step();
    }
    // Quiesce: the others leave; honest clients read and answer everything.
    for i in 0..w.clients.len() {
        if w.clients[i].kind != Kind::Honest && !w.clients[i].gone {
            let conn = w.clients[i].conn;
            w.server.handle_disconnect(w.now, conn, "sim: end");
            w.clients[i].gone = true;
        }
    }
    for _ in 0..200 {
        for i in 0..w.clients.len() {
            if w.clients[i].gone || !w.clients[i].greeted {
                continue;
            }
            // A pending send may wait forever (e.g. more copies for one
            // listener than its queue holds): give up on it, so the
            // endpoint can reply.
            for ep in w.clients[i].eps.clone() {
                w.request(i, ep, Request::DiscardSend(()), None);
            }
            while !w.clients[i].to_answer.is_empty() {
                w.answer_one(i);
            }
            for ep in w.clients[i].eps.clone() {
                w.request(i, ep, Request::RecvBatch(64), None);
            }
            // (Bounded: a connection may stop being read, e.g. when cut off.)
            for _ in 0..1000 {
                if w.clients[i].to_send.is_empty() {
                    break;
                }
                w.deliver_input(i);
                w.flush();
            }
        }
        w.now += 10 * MS;
        w.server.handle_timeout(w.now);
        w.flush();
        w.server.check_invariants(64 * 1024).unwrap();
    }
    if std::env::var("SIM_DEBUG").is_ok() {
        let i = w.clients.iter().position(|c| !c.gone && c.greeted).unwrap();
        w.request(i, 0, Request::BusStats(()), None);
        w.deliver_input(i);
        w.flush();
        TRACE.with(|t| {
            for l in t.borrow().iter().filter(|l| l.starts_with("STATS")) {
                eprintln!("{l}");
            }
        });
    }
    // Every request an honest client still holds got exactly one reply.
    let mut checked = 0u64;
    for c in w
        .clients
        .iter()
        .filter(|c| c.kind == Kind::Honest && !c.gone)
    {
        let live: HashSet<u32> = c.eps.iter().copied().collect();
        for (&(ep, id), &n) in &c.requests {
            if live.contains(&ep) {
                if n != 1 {
                    TRACE.with(|t| {
                        for l in t.borrow().iter().filter(|l| l.contains(&format!("{id:?}"))) {
                            eprintln!("{l}");
                        }
                    });
                }
                assert_eq!(n, 1, "request {id:?} of endpoint {ep} got {n} replies");
                checked += 1;
            }
        }
    }
    CHECKED.fetch_add(checked, Ordering::Relaxed);
    let st = w.server.stats();
    VIOLATIONS.fetch_add(st.violations, Ordering::Relaxed);
    HELLO_TIMEOUTS.fetch_add(st.hello_timeouts, Ordering::Relaxed);
    BACKOFFS.fetch_add(st.fd_write_backoffs, Ordering::Relaxed);
    REFUSED.fetch_add(st.refused_connections, Ordering::Relaxed);
    // Everyone leaves: nothing is held.
    for c in &mut w.clients {
        if !c.gone {
            w.server.handle_disconnect(w.now, c.conn, "sim: done");
            c.gone = true;
        }
    }
    w.flush();
    w.server.check_invariants(0).unwrap();
    assert_eq!(
        (w.server.connection_count(), w.server.parked_count()),
        (0, 0)
    );
    let _ = Errno::EPERM;
}

static CHECKED: AtomicU64 = AtomicU64::new(0);
static VIOLATIONS: AtomicU64 = AtomicU64::new(0);
static HELLO_TIMEOUTS: AtomicU64 = AtomicU64::new(0);
static BACKOFFS: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);

#[test]
fn server_session_under_faults() {
    run_seeds("server_session_under_faults", 0, 200, scenario);
    if std::env::var("BUSBAR_SIM_SEED").is_err() {
        // The faults were really injected, and requests really checked.
        let got = [&CHECKED, &VIOLATIONS, &HELLO_TIMEOUTS, &BACKOFFS, &REFUSED]
            .map(|c| c.load(Ordering::Relaxed));
        eprintln!(
            "requests checked, violations, hello timeouts, write back-offs, refused connections: {got:?}"
        );
        assert!(got.iter().all(|&n| n > 0), "{got:?}");
    }
}
