//! Model-based property test of the in-process bus.
//!
//! Random operation sequences run against `Bus::in_process_with` and against
//! a deliberately naive reference model written below (a `Vec` of bindings
//! scanned linearly, one `VecDeque` per endpoint, the rules of
//! `docs/semantics.md` spelled out directly). After every operation:
//!
//! - every result (success, errno, returned previous value) and every
//!   received message (id, names, flags, from/to, in_reply_to, data) matches
//!   the model, and so do the bus and endpoint statistics;
//! - **order**: each receiver's ids never decrease (no `URGENT`, no
//!   `ALL_OR_WAIT`, so no exception applies), and at the end any two
//!   messages received by two endpoints are in the same relative order at
//!   both;
//! - **replies**: a requester never sees two different replies to one
//!   request, and in the final drain every request it sent gets exactly one;
//! - **no silent loss**: per endpoint, copies offered (model) minus copies
//!   removed by unbind (model) == received + queued + lost (bus stats); the
//!   `lost` fields received never exceed `stats.lost`, and they add up to it
//!   exactly once a message pushed after the last loss has been received;
//! - **queue limits**: queued + outstanding requests <= queue limit, unless
//!   the limit was lowered below the current level (lowering discards
//!   nothing) in which case the level must not grow.
//!
//! Not modelled: `URGENT`, `ALL_OR_WAIT`, bind events, message sizes,
//! several buses. Where the semantics leave a choice open the model accepts
//! every allowed outcome: which of several failure conditions a failed send
//! reports; the order of one message's copies within one queue, and so which
//! binding a copy left behind is due to (likewise when not all of an
//! endpoint's matching bindings got a copy: only once, or a nearly full
//! queue) -- when an unbind may or may not remove such a copy, the endpoint
//! is drained at once and either outcome is accepted; whether a loss found
//! while delivering a message is reported on that message or the next; and
//! where a loss report goes when an unbind removes the message carrying it.
//!
//! The final phase gives every queue room, sends everyone one more message
//! (`$.fin`) and drains everything, so every loss must by then have been
//! reported; then repliers answer the requesters that close before them and
//! the endpoints close one by one, each drained first, so every request it
//! sent must have had exactly one reply, real or synthetic (`Ignored` from
//! a replier that closed earlier; `GoneAway`/`Unbound` and replies to closed
//! requesters come up during the random phase).
//!
//! `PROPTEST_CASES=20000 cargo test -p busbar --test model` for a deeper run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::mem;

use busbar::{
    Bus, Endpoint, EndpointId, Errno, Flags, KernelConfig, Message, MessageId, Outgoing, synthetic,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Message names used by sends.
const NAMES: &[&str] = &["$.a", "$.a.b", "$.a.c", "$.a.b.c", "$.b"];
/// Sending to a wildcard is `EBADMSG`.
const BAD_NAME: &str = "$.a.*";
/// Binding patterns.
const PATTERNS: &[&str] = &["$.a", "$.a.b", "$.b", "$.a.%", "$.a.*", "$.a.b.*", "$.*"];
/// A wildcard that is not the last word is `EBADMSG`.
const BAD_PATTERN: &str = "$.*.a";
/// Used only by the final drain.
const FIN: &str = "$.fin";
const MAX_ENDPOINTS: usize = 6;

// ----- names ----------------------------------------------------------------

/// `$.` then dot-separated alphanumeric words; a pattern's last word may be
/// `*` or `%`.
fn is_valid(name: &str, pattern: bool) -> bool {
    let Some(rest) = name.strip_prefix("$.") else {
        return false;
    };
    let words: Vec<&str> = rest.split('.').collect();
    let last = words.len() - 1;
    words.iter().enumerate().all(|(i, w)| {
        (!w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric()))
            || (pattern && i == last && (*w == "*" || *w == "%"))
    })
}

/// `*` = one or more further words, `%` = exactly one, else equality.
fn matches(pattern: &str, name: &str) -> bool {
    let rest = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('.'))
            .filter(|r| !r.is_empty())
    };
    if let Some(prefix) = pattern.strip_suffix(".*") {
        rest(prefix).is_some()
    } else if let Some(prefix) = pattern.strip_suffix(".%") {
        rest(prefix).is_some_and(|r| !r.contains('.'))
    } else {
        pattern == name
    }
}

fn static_name(name: &str) -> &'static str {
    NAMES
        .iter()
        .chain(&[FIN])
        .copied()
        .find(|n| *n == name)
        .expect("only our own names carry requests")
}

// ----- operations -------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Bind {
        ep: usize,
        pattern: &'static str,
        replier: bool,
    },
    /// Listens again to the endpoint's latest listener pattern (if any), so
    /// that one endpoint holds the same binding twice.
    BindAgain {
        ep: usize,
    },
    /// Unbinds `pattern` (as replier or listener), or (`None`) the `pick`th
    /// binding the endpoint holds (of its kind, ignoring `replier`).
    Unbind {
        ep: usize,
        pattern: Option<&'static str>,
        pick: usize,
        replier: bool,
    },
    Announce {
        ep: usize,
        name: &'static str,
        all_or_fail: bool,
    },
    /// `to`: a stateful request to that endpoint.
    Request {
        ep: usize,
        name: &'static str,
        to: Option<usize>,
        all_or_fail: bool,
    },
    /// Takes one message; if it wants us to reply and `reply` is set, replies
    /// (with `ALL_OR_FAIL` if `reply == Some(true)`).
    Recv {
        ep: usize,
        reply: Option<bool>,
    },
    /// `try_recv_batch(max)` (`EINVAL` for 0).
    RecvBatch {
        ep: usize,
        max: u32,
    },
    /// `send_batch` of announcements and requests (`true`), maybe
    /// `ALL_OR_FAIL`.
    SendBatch {
        ep: usize,
        sends: Vec<(&'static str, bool, bool)>,
    },
    /// Replies to one of our owed requests (`owed`) or to any request ever
    /// sent on the bus (mostly `ECONNREFUSED`), maybe with a wrong `to`.
    Reply {
        ep: usize,
        pick: usize,
        owed: bool,
        wrong_to: bool,
        all_or_fail: bool,
    },
    SetLimit {
        ep: usize,
        limit: u32,
    },
    SetOnlyOnce {
        ep: usize,
        on: bool,
    },
    /// Closes the endpoint and opens a fresh one in its place.
    Reopen {
        ep: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let ep = || 0..MAX_ENDPOINTS;
    let pattern = || prop_oneof![12 => prop::sample::select(PATTERNS), 1 => Just(BAD_PATTERN)];
    let name = || prop_oneof![12 => prop::sample::select(NAMES), 1 => Just(BAD_NAME)];
    let aof = || prop::bool::weighted(0.3);
    prop_oneof![
        4 => (ep(), pattern(), prop::bool::weighted(0.5))
            .prop_map(|(ep, pattern, replier)| Op::Bind { ep, pattern, replier }),
        1 => ep().prop_map(|ep| Op::BindAgain { ep }),
        2 => (ep(), prop::option::weighted(0.3, pattern()), 0..8usize, any::<bool>())
            .prop_map(|(ep, pattern, pick, replier)| Op::Unbind { ep, pattern, pick, replier }),
        3 => (ep(), name(), aof())
            .prop_map(|(ep, name, all_or_fail)| Op::Announce { ep, name, all_or_fail }),
        4 => (ep(), name(), prop::option::weighted(0.2, ep()), aof())
            .prop_map(|(ep, name, to, all_or_fail)| Op::Request { ep, name, to, all_or_fail }),
        5 => (ep(), prop::option::weighted(0.6, aof()))
            .prop_map(|(ep, reply)| Op::Recv { ep, reply }),
        1 => (ep(), 0..=3u32).prop_map(|(ep, max)| Op::RecvBatch { ep, max }),
        1 => (ep(), prop::collection::vec((name(), any::<bool>(), aof()), 0..=3))
            .prop_map(|(ep, sends)| Op::SendBatch { ep, sends }),
        1 => (ep(), 0..8usize, prop::bool::weighted(0.7), prop::bool::weighted(0.1), aof())
            .prop_map(|(ep, pick, owed, wrong_to, all_or_fail)| Op::Reply {
                ep, pick, owed, wrong_to, all_or_fail
            }),
        1 => (ep(), 0..=4u32).prop_map(|(ep, limit)| Op::SetLimit { ep, limit }),
        1 => (ep(), prop::bool::weighted(0.7)).prop_map(|(ep, on)| Op::SetOnlyOnce { ep, on }),
        1 => ep().prop_map(|ep| Op::Reopen { ep }),
    ]
}

// ----- the model ----------------------------------------------------------------

const WANT_A_REPLY: u32 = Flags::WANT_A_REPLY.0;
const WANT_YOU_TO_REPLY: u32 = Flags::WANT_YOU_TO_REPLY.0;
const SYNTHETIC: u32 = Flags::SYNTHETIC.0;
const ALL_OR_FAIL: u32 = Flags::ALL_OR_FAIL.0;

/// What one received copy must look like (everything but `lost` and creds).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Expect {
    serial: u32,
    in_reply_to: u32,
    to: u32,
    from: u32,
    flags: u32,
    name: &'static str,
    data: Vec<u8>,
}

impl Expect {
    fn is(&self, m: &Message) -> bool {
        m.id == id(self.serial)
            && m.in_reply_to == id(self.in_reply_to)
            && m.to.0 == self.to
            && m.from.0 == self.from
            && m.flags.0 == self.flags
            && *m.name == *self.name
            && m.data[..] == self.data[..]
    }
}

fn id(serial: u32) -> MessageId {
    MessageId { network: 0, serial }
}

/// Why a copy is queued (what an unbind takes away): the binding that
/// brought it, or `None` for a requester's copy of a reply (real or
/// synthetic). Several candidates when the rules do not say which: not all
/// of an endpoint's matching bindings got a copy (only once, or a nearly
/// full queue), or identical copies of which the bus handed out one.
type Cause = Vec<Option<u64>>;

#[derive(Clone, Debug)]
struct Queued {
    msg: Expect,
    cause: Cause,
    /// The endpoint's lost count before and after the send that queued it:
    /// once this copy is received, the `lost` fields received so far add up
    /// to at least `lost_lo` and at most `lost_hi`.
    lost_lo: u64,
    lost_hi: u64,
    /// The lower bound does not apply (an unbind removed a copy that may
    /// have carried a loss report, which then moves on).
    exempt: bool,
    /// An unbind may have removed this copy (ambiguous cause).
    maybe_gone: bool,
}

#[derive(Debug)]
struct MEndpoint {
    id: u32,
    open: bool,
    queue: VecDeque<Queued>,
    limit: u32,
    only_once: bool,
    /// Requests we sent whose reply has not been queued (reserved slots).
    outstanding: BTreeSet<u32>,
    /// Requests we took as replier and still owe: serial -> (requester, name).
    owed: BTreeMap<u32, (u32, &'static str)>,
    lost: u64,
    /// Copies meant for us: queued, or lost because we were full.
    offered: u64,
    /// Queued copies an unbind took away.
    removed: u64,
    received: u64,
    sent: u64,
    /// Sum of the `lost` fields of the messages we received.
    reported: u64,
}

impl MEndpoint {
    fn new(id: u32, limit: u32) -> Self {
        Self {
            id,
            open: true,
            queue: VecDeque::new(),
            limit,
            only_once: false,
            outstanding: BTreeSet::new(),
            owed: BTreeMap::new(),
            lost: 0,
            offered: 0,
            removed: 0,
            received: 0,
            sent: 0,
            reported: 0,
        }
    }

    /// Slots in use: queued messages plus reserved reply slots.
    fn used(&self) -> u32 {
        (self.queue.len() + self.outstanding.len()) as u32
    }
}

#[derive(Debug)]
struct MBinding {
    id: u64,
    ep: usize,
    pattern: &'static str,
    replier: bool,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Announce,
    /// `to` != 0: stateful.
    Request {
        to: u32,
    },
    Reply {
        req: u32,
        to: u32,
    },
}

#[derive(Clone, Debug)]
struct SendSpec {
    name: &'static str,
    kind: Kind,
    all_or_fail: bool,
    data: Vec<u8>,
}

impl SendSpec {
    fn flags(&self) -> u32 {
        let request = matches!(self.kind, Kind::Request { .. });
        (if request { WANT_A_REPLY } else { 0 }) | if self.all_or_fail { ALL_OR_FAIL } else { 0 }
    }

    fn outgoing(&self) -> Outgoing {
        let mut o = Outgoing::announcement(self.name, self.data.clone());
        o.flags = Flags(self.flags());
        match self.kind {
            Kind::Announce => {}
            Kind::Request { to } => o.to = EndpointId(to),
            Kind::Reply { req, to } => {
                o.to = EndpointId(to);
                o.in_reply_to = id(req);
            }
        }
        o
    }
}

/// The copies a send puts in one endpoint's queue through its listener
/// bindings, and how many it loses there.
#[derive(Debug)]
struct ListenerPlan {
    ep: usize,
    copies: Vec<Cause>,
    lost: u64,
}

#[derive(Debug)]
struct Plan {
    /// The replier's copy (with its binding) or the requester's copy of a reply.
    special: Option<(usize, Option<u64>)>,
    listeners: Vec<ListenerPlan>,
}

#[derive(Debug)]
struct Model {
    eps: Vec<MEndpoint>,
    /// Every binding, in binding order.
    bindings: Vec<MBinding>,
    next_binding: u64,
    next_serial: u32,
    default_limit: u32,
}

impl Model {
    fn open_index(&self, id: u32) -> Option<usize> {
        self.eps.iter().position(|e| e.open && e.id == id)
    }

    fn take_serial(&mut self) -> u32 {
        let s = self.next_serial;
        self.next_serial += 1;
        s
    }

    /// Exact name, else `%` on the parent, else the longest `*` prefix.
    fn replier_for(&self, name: &str) -> Option<&MBinding> {
        let repliers = || self.bindings.iter().filter(|b| b.replier);
        repliers()
            .find(|b| b.pattern == name)
            .or_else(|| repliers().find(|b| b.pattern.ends_with(".%") && matches(b.pattern, name)))
            .or_else(|| {
                repliers()
                    .filter(|b| b.pattern.ends_with(".*") && matches(b.pattern, name))
                    .max_by_key(|b| b.pattern.len())
            })
    }

    fn bind(&mut self, ep: usize, pattern: &'static str, replier: bool) -> Result<(), Errno> {
        if !is_valid(pattern, true) {
            return Err(Errno::EBADMSG);
        }
        if replier
            && self
                .bindings
                .iter()
                .any(|b| b.replier && b.pattern == pattern)
        {
            return Err(Errno::EADDRINUSE);
        }
        self.next_binding += 1;
        self.bindings.push(MBinding {
            id: self.next_binding,
            ep,
            pattern,
            replier,
        });
        Ok(())
    }

    /// Returns whether an ambiguous copy may have been removed (the caller
    /// then drains the endpoint, accepting either).
    fn unbind(&mut self, ep: usize, pattern: &'static str, replier: bool) -> Result<bool, Errno> {
        if !is_valid(pattern, true) {
            return Err(Errno::EBADMSG);
        }
        let pos = self
            .bindings
            .iter()
            .rposition(|b| b.ep == ep && b.pattern == pattern && b.replier == replier)
            .ok_or(Errno::EINVAL)?;
        let bid = self.bindings.remove(pos).id;
        let e = &mut self.eps[ep];
        let mut kept: Vec<Queued> = Vec::new();
        let mut gone = Vec::new();
        let (mut lossy, mut ambiguous) = (false, false);
        let hit = |c: &Queued| c.cause.len() > 1 && c.cause.contains(&Some(bid));
        for c in mem::take(&mut e.queue) {
            if c.cause == [Some(bid)] {
                lossy |= c.lost_hi > 0;
                e.removed += 1;
                gone.push(c.msg);
            } else {
                if hit(&c) {
                    lossy |= c.lost_hi > 0;
                    ambiguous = true;
                }
                kept.push(c);
            }
        }
        // Each binding brings at most one copy of a message: of each group of
        // ambiguous copies, at most one (say the last) is gone.
        for j in 0..kept.len() {
            let last_of_group = kept
                .get(j + 1)
                .is_none_or(|n| n.msg.serial != kept[j].msg.serial || !hit(n));
            if hit(&kept[j]) && last_of_group {
                kept[j].maybe_gone = true;
            }
        }
        if lossy {
            for c in &mut kept {
                c.exempt = true;
            }
        }
        e.queue = kept.into();
        let from = e.id;
        for m in gone {
            if m.flags & WANT_YOU_TO_REPLY != 0 {
                self.synthetic_reply(synthetic::UNBOUND, from, m.from, m.serial);
            }
        }
        Ok(ambiguous)
    }

    fn push(&mut self, ep: usize, msg: Expect, cause: Cause, lost_lo: u64, lost_hi: u64) {
        let e = &mut self.eps[ep];
        e.offered += 1;
        e.queue.push_back(Queued {
            msg,
            cause,
            lost_lo,
            lost_hi,
            exempt: false,
            maybe_gone: false,
        });
    }

    /// Answers `req` on the bus's behalf, if its requester still awaits it.
    fn synthetic_reply(&mut self, name: &'static str, from: u32, requester: u32, req: u32) {
        let Some(r) = self.open_index(requester) else {
            return;
        };
        if !self.eps[r].outstanding.remove(&req) {
            return;
        }
        let msg = Expect {
            serial: self.take_serial(),
            in_reply_to: req,
            to: requester,
            from,
            flags: SYNTHETIC,
            name,
            data: Vec::new(),
        };
        let lost = self.eps[r].lost;
        self.push(r, msg, vec![None], lost, lost);
    }

    /// Who gets what, or every error that applies (the implementation may
    /// report any one of them).
    fn plan_send(&self, from: usize, s: &SendSpec) -> Result<Plan, Vec<Errno>> {
        if !is_valid(s.name, false) {
            return Err(vec![Errno::EBADMSG]);
        }
        let mut errs = Vec::new();
        let mut extra = vec![0u32; self.eps.len()];
        let mut special = None;
        match s.kind {
            Kind::Announce => {}
            Kind::Request { to } => {
                if self.eps[from].used() >= self.eps[from].limit {
                    errs.push(Errno::ENOLCK);
                }
                // The reply slot this request reserves counts as used.
                extra[from] += 1;
                match self.replier_for(s.name) {
                    None => errs.push(Errno::EADDRNOTAVAIL),
                    Some(b) if to != 0 && to != self.eps[b.ep].id => errs.push(Errno::EPIPE),
                    Some(b) if self.eps[b.ep].used() + extra[b.ep] >= self.eps[b.ep].limit => {
                        errs.push(Errno::EBUSY);
                    }
                    Some(b) => {
                        extra[b.ep] += 1;
                        special = Some((b.ep, Some(b.id)));
                    }
                }
            }
            Kind::Reply { req, to } => match self.eps[from].owed.get(&req) {
                Some(&(requester, _)) if requester == to => match self.open_index(to) {
                    // Uses its reserved slot: always fits.
                    Some(r) => special = Some((r, None)),
                    None => errs.push(Errno::EADDRNOTAVAIL),
                },
                _ => errs.push(Errno::ECONNREFUSED),
            },
        }
        let mut listeners = Vec::new();
        for (i, e) in self.eps.iter().enumerate().filter(|(_, e)| e.open) {
            let mine: Vec<u64> = self
                .bindings
                .iter()
                .filter(|b| b.ep == i && !b.replier && matches(b.pattern, s.name))
                .map(|b| b.id)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let has_special = special.is_some_and(|(ep, _)| ep == i);
            let wanted = match (e.only_once, has_special) {
                (false, _) => mine.len(),
                (true, false) => 1,
                (true, true) => 0,
            };
            let room = e.limit.saturating_sub(e.used() + extra[i]) as usize;
            let got = wanted.min(room);
            if got < wanted && s.all_or_fail {
                errs.push(Errno::EBUSY);
            }
            let copies = if got == mine.len() {
                mine.iter().map(|&b| vec![Some(b)]).collect()
            } else {
                vec![mine.iter().map(|&b| Some(b)).collect(); got]
            };
            listeners.push(ListenerPlan {
                ep: i,
                copies,
                lost: (wanted - got) as u64,
            });
        }
        if errs.is_empty() {
            Ok(Plan { special, listeners })
        } else {
            Err(errs)
        }
    }

    fn apply_send(&mut self, from: usize, s: &SendSpec, plan: Plan) -> u32 {
        let serial = self.take_serial();
        let (in_reply_to, to) = match s.kind {
            Kind::Announce => (0, 0),
            Kind::Request { to } => {
                self.eps[from].outstanding.insert(serial);
                (0, to)
            }
            Kind::Reply { req, to } => {
                self.eps[from].owed.remove(&req);
                (req, to)
            }
        };
        let base = Expect {
            serial,
            in_reply_to,
            to,
            from: self.eps[from].id,
            flags: s.flags(),
            name: s.name,
            data: s.data.clone(),
        };
        let lost_before: Vec<u64> = self.eps.iter().map(|e| e.lost).collect();
        for l in &plan.listeners {
            self.eps[l.ep].lost += l.lost;
            self.eps[l.ep].offered += l.lost;
        }
        let bounds = |m: &Self, ep: usize| (lost_before[ep], m.eps[ep].lost);
        if let Some((ep, bid)) = plan.special {
            let (lo, hi) = bounds(self, ep);
            match bid {
                Some(bid) => {
                    let mut m = base.clone();
                    m.flags |= WANT_YOU_TO_REPLY;
                    self.push(ep, m, vec![Some(bid)], lo, hi);
                }
                None => {
                    self.eps[ep].outstanding.remove(&in_reply_to);
                    self.push(ep, base.clone(), vec![None], lo, hi);
                }
            }
        }
        for l in plan.listeners {
            let (lo, hi) = bounds(self, l.ep);
            for cause in l.copies {
                self.push(l.ep, base.clone(), cause, lo, hi);
            }
        }
        self.eps[from].sent += 1;
        serial
    }

    /// Close, in the documented order.
    fn close(&mut self, ep: usize) {
        let e = &mut self.eps[ep];
        e.open = false;
        e.outstanding.clear();
        let queue = mem::take(&mut e.queue);
        let owed = mem::take(&mut e.owed);
        let me = e.id;
        for c in queue {
            if c.msg.flags & WANT_YOU_TO_REPLY != 0 {
                self.synthetic_reply(synthetic::GONE_AWAY, me, c.msg.from, c.msg.serial);
            }
        }
        self.bindings.retain(|b| b.ep != ep);
        for (req, (requester, _)) in owed {
            self.synthetic_reply(synthetic::IGNORED, me, requester, req);
        }
    }
}

// ----- the harness: bus and model side by side --------------------------------

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

struct Harness {
    bus: Bus,
    /// The bus's endpoints, parallel to `model.eps` (`None` once closed).
    live: Vec<Option<Endpoint>>,
    /// Which endpoint each operation slot addresses now.
    slots: Vec<usize>,
    model: Model,
    /// Per receiver: serials received, in order.
    seen: BTreeMap<u32, Vec<u32>>,
    /// Per requester: requests the bus accepted.
    accepted: BTreeMap<u32, BTreeSet<u32>>,
    /// (requester, request) -> ids of the replies it received.
    replies: BTreeMap<(u32, u32), BTreeSet<u32>>,
    /// Every accepted request: (serial, requester, name).
    requests: Vec<(u32, u32, &'static str)>,
    /// queued + outstanding of each endpoint after the previous operation.
    used_before: BTreeMap<u32, u32>,
    step: usize,
}

impl Harness {
    fn new(n: usize, limit: u32) -> Result<Self, TestCaseError> {
        let bus = Bus::in_process_with(KernelConfig {
            default_queue_limit: limit,
            ..KernelConfig::default()
        })
        .map_err(|e| fail(format!("bus: {e:?}")))?;
        let mut h = Self {
            bus,
            live: Vec::new(),
            slots: Vec::new(),
            model: Model {
                eps: Vec::new(),
                bindings: Vec::new(),
                next_binding: 0,
                next_serial: 1,
                default_limit: limit,
            },
            seen: BTreeMap::new(),
            accepted: BTreeMap::new(),
            replies: BTreeMap::new(),
            requests: Vec::new(),
            used_before: BTreeMap::new(),
            step: 0,
        };
        for _ in 0..n {
            let i = h.open()?;
            h.slots.push(i);
        }
        Ok(h)
    }

    fn open(&mut self) -> Result<usize, TestCaseError> {
        let ep = self.bus.open().map_err(|e| fail(format!("open: {e:?}")))?;
        let id = ep.id().0;
        prop_assert!(
            self.model.eps.iter().all(|e| e.id < id),
            "endpoint id {} reused or not increasing",
            id
        );
        self.live.push(Some(ep));
        self.model
            .eps
            .push(MEndpoint::new(id, self.model.default_limit));
        Ok(self.model.eps.len() - 1)
    }

    fn ep(&self, i: usize) -> &Endpoint {
        self.live[i].as_ref().expect("slots address open endpoints")
    }

    fn data(&self) -> Vec<u8> {
        format!("step {}", self.step).into_bytes()
    }

    /// Sends on both sides and compares; returns the serial if it was sent.
    fn send(&mut self, from: usize, s: SendSpec) -> Result<Option<u32>, TestCaseError> {
        let got = self.ep(from).send(s.outgoing());
        self.sent(from, &s, got)
    }

    /// Compares what the bus did with `s` with the model, which follows.
    fn sent(
        &mut self,
        from: usize,
        s: &SendSpec,
        got: Result<MessageId, Errno>,
    ) -> Result<Option<u32>, TestCaseError> {
        let predicted = self.model.plan_send(from, s);
        let me = self.model.eps[from].id;
        match (predicted, got) {
            (Ok(plan), Ok(got)) => {
                prop_assert_eq!(
                    got,
                    id(self.model.next_serial),
                    "send {:?} from {}: id",
                    s,
                    me
                );
                let serial = self.model.apply_send(from, s, plan);
                if let Kind::Request { .. } = s.kind {
                    self.accepted.entry(me).or_default().insert(serial);
                    self.requests.push((serial, me, s.name));
                }
                Ok(Some(serial))
            }
            (Err(allowed), Err(e)) => {
                prop_assert!(
                    allowed.contains(&e),
                    "send {:?} from {}: bus says {:?}, model allows {:?}",
                    s,
                    me,
                    e,
                    allowed
                );
                // A reply to a requester that has gone cancels the debt.
                if let Kind::Reply { req, to } = s.kind {
                    let owed = &mut self.model.eps[from].owed;
                    if e == Errno::EADDRNOTAVAIL && owed.get(&req).is_some_and(|r| r.0 == to) {
                        owed.remove(&req);
                    }
                }
                Ok(None)
            }
            (predicted, got) => Err(fail(format!(
                "send {s:?} from {me}: model {predicted:?}, bus {got:?}"
            ))),
        }
    }

    /// Takes one message from endpoint `i` and checks it against the model.
    fn recv(&mut self, i: usize) -> Result<Option<Message>, TestCaseError> {
        let got = self
            .ep(i)
            .try_recv()
            .map_err(|e| fail(format!("recv: {e:?}")))?;
        self.received(i, got)
    }

    /// Checks a message taken from endpoint `i` (`None`: its queue was
    /// empty) against the model, which follows.
    fn received(
        &mut self,
        i: usize,
        got: Option<Message>,
    ) -> Result<Option<Message>, TestCaseError> {
        let e = &mut self.model.eps[i];
        let copy = loop {
            let Some(front) = e.queue.front() else {
                match &got {
                    None => return Ok(None),
                    Some(m) => {
                        return Err(fail(format!(
                            "endpoint {}: bus delivered {m:?}, model expected nothing",
                            e.id
                        )));
                    }
                }
            };
            // The copies of one message sit together; their order among
            // themselves is not specified.
            let serial = front.msg.serial;
            let group = e
                .queue
                .iter()
                .take_while(|c| c.msg.serial == serial)
                .count();
            let same: Vec<usize> = (0..group)
                .filter(|&j| got.as_ref().is_some_and(|m| e.queue[j].msg.is(m)))
                .collect();
            if same.is_empty() {
                if e.queue.iter().take(group).all(|c| c.maybe_gone) {
                    // Copies that the last unbind did take away.
                    e.queue.drain(..group);
                    e.removed += group as u64;
                    continue;
                }
                return Err(fail(format!(
                    "endpoint {}: model expected {:?}, bus delivered {got:?}",
                    e.id, e.queue[0].msg
                )));
            }
            // Identical copies: the bus may hand out any of them, so each one
            // left may be due to any of their causes.
            let pick = (same.iter().copied())
                .find(|&j| !e.queue[j].maybe_gone)
                .unwrap_or(same[0]);
            let mut causes: Cause = same
                .iter()
                .flat_map(|&j| e.queue[j].cause.clone())
                .collect();
            causes.sort_unstable();
            causes.dedup();
            for &j in &same {
                e.queue[j].cause.clone_from(&causes);
            }
            break e.queue.remove(pick).expect("in the group");
        };
        let m = got.expect("matched a copy");
        let me = e.id;
        e.received += 1;
        e.reported += u64::from(m.lost);
        prop_assert!(
            e.reported <= copy.lost_hi,
            "endpoint {}: losses reported ({}) exceed losses so far ({}) at {:?}",
            me,
            e.reported,
            copy.lost_hi,
            m
        );
        prop_assert!(
            copy.exempt || e.reported >= copy.lost_lo,
            "endpoint {}: {} losses before {:?} but only {} reported",
            me,
            copy.lost_lo,
            m,
            e.reported
        );
        if m.wants_us_to_reply() {
            e.owed.insert(m.id.serial, (m.from.0, static_name(&m.name)));
        }
        // Independent of the model: one order, one reply per request.
        let seq = self.seen.entry(me).or_default();
        if let Some(&last) = seq.last() {
            prop_assert!(
                m.id.serial >= last,
                "endpoint {}: {:?} after serial {}",
                me,
                m,
                last
            );
        }
        seq.push(m.id.serial);
        if m.is_reply() && m.to.0 == me {
            prop_assert!(
                self.accepted
                    .get(&me)
                    .is_some_and(|a| a.contains(&m.in_reply_to.serial)),
                "endpoint {}: reply to a request it did not send: {:?}",
                me,
                m
            );
            let ids = self.replies.entry((me, m.in_reply_to.serial)).or_default();
            ids.insert(m.id.serial);
            prop_assert!(
                ids.len() == 1,
                "endpoint {}: two replies {:?} to request {}",
                me,
                ids,
                m.in_reply_to
            );
        }
        Ok(Some(m))
    }

    fn drain(&mut self, i: usize) -> Result<(), TestCaseError> {
        while self.recv(i)?.is_some() {}
        Ok(())
    }

    fn reply(
        &mut self,
        i: usize,
        req: u32,
        to: u32,
        name: &'static str,
        all_or_fail: bool,
    ) -> Result<Option<u32>, TestCaseError> {
        let spec = SendSpec {
            name,
            kind: Kind::Reply { req, to },
            all_or_fail,
            data: self.data(),
        };
        self.send(i, spec)
    }

    fn close(&mut self, i: usize) -> Result<(), TestCaseError> {
        let ep = self.live[i].take().expect("open");
        ep.close().map_err(|e| fail(format!("close: {e:?}")))?;
        self.model.close(i);
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let n = self.slots.len();
        let slot = |ep: usize| ep % n;
        match op.clone() {
            Op::Bind {
                ep,
                pattern,
                replier,
            } => {
                let i = self.slots[slot(ep)];
                let got = if replier {
                    self.ep(i).bind_replier(pattern)
                } else {
                    self.ep(i).bind(pattern)
                };
                let want = self.model.bind(i, pattern, replier);
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::BindAgain { ep } => {
                let i = self.slots[slot(ep)];
                let latest = (self.model.bindings.iter().rev())
                    .find(|b| b.ep == i && !b.replier)
                    .map(|b| b.pattern);
                if let Some(pattern) = latest {
                    prop_assert_eq!(self.ep(i).bind(pattern), Ok(()), "{:?}", op);
                    prop_assert_eq!(self.model.bind(i, pattern, false), Ok(()));
                }
            }
            Op::Unbind {
                ep,
                pattern,
                pick,
                replier,
            } => {
                let i = self.slots[slot(ep)];
                let mine: Vec<(&'static str, bool)> = (self.model.bindings.iter())
                    .filter(|b| b.ep == i)
                    .map(|b| (b.pattern, b.replier))
                    .collect();
                let (pattern, replier) = match pattern {
                    Some(p) => (p, replier),
                    None if mine.is_empty() => (PATTERNS[pick % PATTERNS.len()], replier),
                    None => mine[pick % mine.len()],
                };
                let got = if replier {
                    self.ep(i).unbind_replier(pattern)
                } else {
                    self.ep(i).unbind(pattern)
                };
                let want = self.model.unbind(i, pattern, replier);
                prop_assert_eq!(got, want.map(|_| ()), "{:?}", op);
                if want == Ok(true) {
                    // Which of the copies went depends on an unspecified
                    // choice: drain now and accept either.
                    self.drain(i)?;
                }
            }
            Op::Announce {
                ep,
                name,
                all_or_fail,
            } => {
                let i = self.slots[slot(ep)];
                let spec = SendSpec {
                    name,
                    kind: Kind::Announce,
                    all_or_fail,
                    data: self.data(),
                };
                self.send(i, spec)?;
            }
            Op::Request {
                ep,
                name,
                to,
                all_or_fail,
            } => {
                let i = self.slots[slot(ep)];
                let to = to.map_or(0, |t| self.model.eps[self.slots[slot(t)]].id);
                let spec = SendSpec {
                    name,
                    kind: Kind::Request { to },
                    all_or_fail,
                    data: self.data(),
                };
                self.send(i, spec)?;
            }
            Op::Recv { ep, reply } => {
                let i = self.slots[slot(ep)];
                if let Some(m) = self.recv(i)?
                    && let Some(all_or_fail) = reply
                    && m.wants_us_to_reply()
                {
                    let name = static_name(&m.name);
                    self.reply(i, m.id.serial, m.from.0, name, all_or_fail)?;
                }
            }
            Op::RecvBatch { ep, max } => {
                let i = self.slots[slot(ep)];
                match self.ep(i).try_recv_batch(max) {
                    Err(e) => prop_assert!(max == 0 && e == Errno::EINVAL, "{:?}: {:?}", op, e),
                    Ok(got) => {
                        prop_assert!(max > 0, "{:?}: Ok", op);
                        prop_assert!(
                            got.len() <= max as usize,
                            "{:?}: {} messages",
                            op,
                            got.len()
                        );
                        let all = got.len() < max as usize;
                        for m in got {
                            self.received(i, Some(m))?;
                        }
                        if all {
                            // Fewer than asked for: the queue is empty now.
                            prop_assert!(self.received(i, None)?.is_none());
                        }
                    }
                }
            }
            Op::SendBatch { ep, sends } => {
                let i = self.slots[slot(ep)];
                let specs: Vec<SendSpec> = (sends.iter())
                    .map(|&(name, request, all_or_fail)| SendSpec {
                        name,
                        kind: if request {
                            Kind::Request { to: 0 }
                        } else {
                            Kind::Announce
                        },
                        all_or_fail,
                        data: self.data(),
                    })
                    .collect();
                let got = self
                    .ep(i)
                    .send_batch(specs.iter().map(SendSpec::outgoing).collect())
                    .map_err(|e| fail(format!("{op:?}: {e:?}")))?;
                prop_assert_eq!(got.len(), specs.len(), "{:?}", op);
                for (s, got) in specs.iter().zip(got) {
                    self.sent(i, s, got)?;
                }
            }
            Op::Reply {
                ep,
                pick,
                owed,
                wrong_to,
                all_or_fail,
            } => {
                let i = self.slots[slot(ep)];
                let owed_list: Vec<_> = self.model.eps[i]
                    .owed
                    .iter()
                    .map(|(&req, &(r, name))| (req, r, name))
                    .collect();
                let target = if owed && !owed_list.is_empty() {
                    owed_list[pick % owed_list.len()]
                } else if !self.requests.is_empty() {
                    self.requests[pick % self.requests.len()]
                } else {
                    return Ok(());
                };
                let (req, requester, name) = target;
                let to = if wrong_to { requester + 1 } else { requester };
                self.reply(i, req, to, name, all_or_fail)?;
            }
            Op::SetLimit { ep, limit } => {
                let i = self.slots[slot(ep)];
                let got = self.ep(i).set_queue_limit(limit);
                let want = if limit == 0 {
                    Err(Errno::EINVAL)
                } else {
                    Ok(mem::replace(&mut self.model.eps[i].limit, limit))
                };
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::SetOnlyOnce { ep, on } => {
                let i = self.slots[slot(ep)];
                let got = self.ep(i).set_only_once(on);
                let want = Ok(mem::replace(&mut self.model.eps[i].only_once, on));
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::Reopen { ep } => {
                let s = slot(ep);
                self.close(self.slots[s])?;
                self.slots[s] = self.open()?;
            }
        }
        Ok(())
    }

    /// Compares every statistic with the model and checks the invariants.
    fn check(&mut self) -> Result<(), TestCaseError> {
        let bs = self
            .bus
            .stats()
            .map_err(|e| fail(format!("bus stats: {e:?}")))?;
        let m = &self.model;
        let open: Vec<usize> = (0..m.eps.len()).filter(|&i| m.eps[i].open).collect();
        prop_assert_eq!(bs.endpoints as usize, open.len());
        prop_assert_eq!(bs.bindings as usize, m.bindings.len());
        prop_assert_eq!(
            bs.replier_bindings as usize,
            m.bindings.iter().filter(|b| b.replier).count()
        );
        prop_assert_eq!(bs.next_serial, m.next_serial);
        prop_assert_eq!(bs.set_aside, 0);
        for &i in &open {
            let e = &m.eps[i];
            let Some(st) = bs.endpoint_stats.iter().find(|s| s.id.0 == e.id) else {
                return Err(fail(format!("no stats for endpoint {}", e.id)));
            };
            let own = self.ep(i).stats().map_err(|e| fail(format!("{e:?}")))?;
            prop_assert_eq!(&own, st);
            let ctx = format!("endpoint {}: {st:?}", e.id);
            prop_assert_eq!(st.queued as usize, e.queue.len(), "queued; {}", ctx);
            prop_assert_eq!(
                st.outstanding_requests as usize,
                e.outstanding.len(),
                "outstanding; {}",
                ctx
            );
            prop_assert_eq!(st.owed_replies as usize, e.owed.len(), "owed; {}", ctx);
            prop_assert_eq!(st.lost, e.lost, "lost; {}", ctx);
            prop_assert_eq!(st.queue_limit, e.limit, "limit; {}", ctx);
            prop_assert_eq!(st.only_once, e.only_once, "only once; {}", ctx);
            prop_assert_eq!(
                st.bindings as usize,
                m.bindings.iter().filter(|b| b.ep == i).count(),
                "bindings; {}",
                ctx
            );
            prop_assert_eq!(st.received, e.received, "received; {}", ctx);
            prop_assert_eq!(st.sent, e.sent, "sent; {}", ctx);
            prop_assert_eq!(st.pending_send, None, "pending; {}", ctx);
            // 3. Nothing disappears without being counted.
            prop_assert_eq!(
                e.offered - e.removed,
                st.received + u64::from(st.queued) + st.lost,
                "offered - removed != received + queued + lost; {}",
                ctx
            );
            prop_assert!(
                e.reported <= st.lost,
                "reported {} > lost; {}",
                e.reported,
                ctx
            );
            // 4. Queue limits hold (lowering a limit discards nothing, but
            // then the level must not grow).
            let used = st.queued + st.outstanding_requests;
            let before = self.used_before.get(&e.id).copied().unwrap_or(0);
            prop_assert!(
                used <= st.queue_limit || used <= before,
                "queue over its limit (was {}); {}",
                before,
                ctx
            );
            self.used_before.insert(e.id, used);
        }
        for name in NAMES.iter().chain(&[BAD_NAME]) {
            let got = self.bus.find_replier(name);
            let want = if is_valid(name, false) {
                Ok(m.replier_for(name).map(|b| EndpointId(m.eps[b.ep].id)))
            } else {
                Err(Errno::EBADMSG)
            };
            prop_assert_eq!(got, want, "find_replier({})", name);
        }
        Ok(())
    }

    /// Closes everything, checking that every request got its one reply and
    /// every loss was reported; then checks the one order.
    fn finish(mut self) -> Result<(), TestCaseError> {
        let slots = self.slots.clone();
        self.step += 1;
        // Room everywhere from now on: nothing more is lost or refused.
        for &i in &slots {
            let got = self.ep(i).set_queue_limit(1000);
            let want = mem::replace(&mut self.model.eps[i].limit, 1000);
            prop_assert_eq!(got, Ok(want));
        }
        self.check()?;
        // A message after the last loss, for everyone.
        for &i in &slots {
            prop_assert_eq!(self.ep(i).bind(FIN), Ok(()));
            prop_assert_eq!(self.model.bind(i, FIN, false), Ok(()));
        }
        let spec = SendSpec {
            name: FIN,
            kind: Kind::Announce,
            all_or_fail: false,
            data: self.data(),
        };
        prop_assert!(self.send(slots[0], spec)?.is_some());
        for &i in &slots {
            self.drain(i)?;
            let e = &self.model.eps[i];
            prop_assert_eq!(e.reported, e.lost, "endpoint {}: losses reported", e.id);
        }
        self.check()?;
        // Real replies where the requester closes first (or is the replier);
        // the rest are answered `Ignored` when their replier closes.
        for (pos, &y) in slots.iter().enumerate() {
            let owed: Vec<_> = self.model.eps[y]
                .owed
                .iter()
                .map(|(&req, &(r, name))| (req, r, name))
                .collect();
            for (req, requester, name) in owed {
                let rpos = slots
                    .iter()
                    .position(|&s| self.model.eps[s].id == requester);
                if rpos.is_some_and(|r| r <= pos) {
                    prop_assert!(self.reply(y, req, requester, name, false)?.is_some());
                }
            }
        }
        self.check()?;
        for &x in &slots {
            self.drain(x)?;
            let me = self.model.eps[x].id;
            for &req in self.accepted.get(&me).into_iter().flatten() {
                let n = self.replies.get(&(me, req)).map_or(0, BTreeSet::len);
                prop_assert_eq!(n, 1, "endpoint {}: replies to request {}", me, req);
            }
            self.check()?;
            prop_assert_eq!(self.ep(x).stats().map(|s| s.outstanding_requests), Ok(0));
            self.close(x)?;
            self.check()?;
        }
        let bs = self.bus.stats().map_err(|e| fail(format!("{e:?}")))?;
        prop_assert_eq!((bs.endpoints, bs.bindings), (0, 0));
        // 1. One total order: any two messages received by two endpoints are
        // in the same relative order at both.
        let seqs: Vec<(u32, Vec<u32>)> = self
            .seen
            .iter()
            .map(|(&ep, s)| {
                let mut s = s.clone();
                s.dedup();
                (ep, s)
            })
            .collect();
        for (a, sa) in &seqs {
            for (b, sb) in &seqs {
                let pos: BTreeMap<u32, usize> =
                    sb.iter().enumerate().map(|(i, &s)| (s, i)).collect();
                let common: Vec<usize> = sa.iter().filter_map(|s| pos.get(s).copied()).collect();
                prop_assert!(
                    common.windows(2).all(|w| w[0] < w[1]),
                    "endpoints {} and {} saw common messages in different orders",
                    a,
                    b
                );
            }
        }
        Ok(())
    }
}

fn run(n: usize, limit: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(n, limit)?;
    h.check()?;
    for op in ops {
        h.step += 1;
        h.apply(op)?;
        h.check()?;
    }
    h.finish()
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES=100000 for a deeper run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn bus_agrees_with_model(
        n in 3..=MAX_ENDPOINTS,
        limit in 1..=4u32,
        ops in prop::collection::vec(op(), 1..=60),
    ) {
        run(n, limit, &ops)?;
    }
}

/// A fixed sequence through every kind of operation, so a regression in the
/// harness itself shows up without relying on the generator.
#[test]
fn scripted_sequence() {
    let ops = [
        Op::Bind {
            ep: 0,
            pattern: "$.a.*",
            replier: true,
        },
        Op::Bind {
            ep: 1,
            pattern: "$.*",
            replier: false,
        },
        Op::Bind {
            ep: 1,
            pattern: "$.a.%",
            replier: false,
        },
        Op::BindAgain { ep: 1 },
        Op::Bind {
            ep: 2,
            pattern: "$.a.*",
            replier: true,
        },
        Op::Request {
            ep: 2,
            name: "$.a.b",
            to: None,
            all_or_fail: false,
        },
        Op::Request {
            ep: 2,
            name: "$.a.c",
            to: Some(1),
            all_or_fail: false,
        },
        Op::Announce {
            ep: 2,
            name: "$.a.b",
            all_or_fail: true,
        },
        Op::SetOnlyOnce { ep: 1, on: true },
        Op::Announce {
            ep: 0,
            name: "$.a.c",
            all_or_fail: false,
        },
        Op::Recv {
            ep: 0,
            reply: Some(false),
        },
        Op::Unbind {
            ep: 1,
            pattern: Some("$.*"),
            pick: 0,
            replier: false,
        },
        Op::Request {
            ep: 1,
            name: "$.a.b.c",
            to: None,
            all_or_fail: false,
        },
        Op::Reopen { ep: 0 },
        Op::SetLimit { ep: 1, limit: 1 },
        Op::Announce {
            ep: 2,
            name: "$.a.b",
            all_or_fail: false,
        },
        Op::Reply {
            ep: 0,
            pick: 0,
            owed: false,
            wrong_to: false,
            all_or_fail: false,
        },
        Op::Recv { ep: 1, reply: None },
    ];
    if let Err(e) = run(3, 2, &ops) {
        panic!("{e}");
    }
}
