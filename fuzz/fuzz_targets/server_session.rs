//! Feeds arbitrary bytes to the daemon's sans-IO session as the input of a
//! few connections (split where the fuzzer says, with time passing and
//! output written or not): whatever arrives, the session never panics and
//! its bookkeeping holds (`Server::check_invariants`).
#![no_main]

use busbar_kernel::{Credentials, KernelConfig, Quota};
use busbar_server::{Limits, Privilege, Server};
use busbar_wire::emit_hello;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = KernelConfig {
        default_queue_limit: 4,
        max_message_size: 1000,
        absolute_max_message_size: 1000,
        quota: Quota {
            messages: 8,
            bytes: 4096,
            handles: 8,
            fds: 8,
        },
        ..KernelConfig::default()
    };
    let limits = Limits {
        max_parked_per_connection: 2,
        max_output: 4096,
        max_frame: Limits::frame_for_message_size(1000),
        ..Limits::default()
    };
    let Ok(mut s) = Server::new(config, limits, Privilege::default(), 7, Box::new(|_, _| {}))
    else {
        return;
    };
    let mut conns = Vec::new();
    for uid in [0, 1000, 1000] {
        let creds = Credentials {
            pid: 1,
            uid,
            gid: uid,
        };
        let c = s.handle_connect(0, creds).unwrap();
        let mut hello = Vec::new();
        emit_hello(&mut hello);
        s.handle_input(0, c, &hello, Vec::new());
        conns.push(c);
    }
    let mut now = 0;
    // Each chunk: [control byte][length byte][that many bytes].
    let mut rest = data;
    while let [ctl, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (chunk, after) = tail.split_at(n);
        rest = after;
        let c = conns[(*ctl as usize) % conns.len()];
        match ctl >> 4 {
            0 => s.handle_eof(now, c),
            1 => {
                now += 10_000_000;
                s.handle_timeout(now);
            }
            2 => s.handle_disconnect(now, c, "fuzz"),
            _ => s.handle_input(now, c, chunk, Vec::new()),
        }
        // Write what is owed to connections whose control bit says they read.
        while let Some(d) = s.poll_dirty() {
            if ctl & 8 != 0 {
                while let Some((bytes, fds)) = s.poll_transmit(d) {
                    let (n, f) = (bytes.len(), fds.len());
                    s.handle_sent(now, d, n, f);
                }
            }
        }
        s.check_invariants(1 << 20).unwrap();
    }
});
