//! `busbar bench --size N` for large data (N at least the memfd threshold):
//! delivered bytes per second through the daemon, one sender to one
//! listener and to four listeners, beside raw baselines measured in the
//! same run (a `memcpy` of the same bytes, fresh sealed memfds written whole
//! without a bus, and the same bytes streamed over a Unix socket between
//! two processes).
//!
//! Every byte counts: the sender writes every byte of every message (into a
//! `PayloadBuffer`, so the data travels as its sealed memfd), and every
//! receiver reads every byte, summing its 64-bit words and checking the sum
//! against the one the sender wrote in the last word. The raw sink does the
//! same. Flow control keeps the run inside the default configuration: each
//! listener's queue holds a small window of messages and the sender waits
//! for room (`ALL_OR_WAIT`), so in-flight data stays under the default
//! quota (256 MiB per pair of users) and nothing is lost.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use busbar::{Bus, Outgoing, PayloadBuffer};

use crate::bench::{BenchArgs, err, io_err, ready_line, spawn};

const NAME: &str = "$.bench.data";

/// Messages each listener's queue holds: at most 48 MiB of data per
/// listener, so four listeners stay under the default 256 MiB quota.
pub fn window(size: usize) -> u32 {
    ((48usize << 20) / size.max(1)).clamp(1, 64) as u32
}

/// Messages to send when `--messages` is not given: about 4 GiB.
pub fn default_messages(size: usize) -> u64 {
    ((4u64 << 30) / size.max(1) as u64).clamp(16, 1_000_000)
}

/// Fills `buf` (a multiple of 8 bytes, at least 8) with words derived from
/// `seed`, writing every byte, and puts the wrapping sum of all other words
/// in the last word.
pub fn fill(buf: &mut [u8], seed: u64) {
    let (body, last) = buf.split_at_mut(buf.len() - 8);
    let mut sum = 0u64;
    for (i, w) in body.chunks_exact_mut(8).enumerate() {
        let v = seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(i as u64);
        w.copy_from_slice(&v.to_le_bytes());
        sum = sum.wrapping_add(v);
    }
    last.copy_from_slice(&sum.to_le_bytes());
}

/// Reads every byte of `buf`: does the last word hold the sum of the others?
pub fn verify(buf: &[u8]) -> bool {
    if buf.len() < 8 || !buf.len().is_multiple_of(8) {
        return false;
    }
    let (body, last) = buf.split_at(buf.len() - 8);
    let sum = body.chunks_exact(8).fold(0u64, |s, w| {
        s.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()))
    });
    sum == u64::from_le_bytes(last.try_into().unwrap())
}

/// One result row: bytes moved and the time it took.
pub struct Rate {
    pub bytes: u64,
    pub secs: f64,
}

impl Rate {
    pub fn gb_per_s(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e9
    }
}

/// The large-data runs' results.
pub struct Rates {
    /// `memcpy` of the same bytes, one thread.
    pub memcpy: Rate,
    /// Fresh sealed memfds, each written whole and sealed, one thread, no
    /// bus: what one sender can make (the ceiling of a 1 → 1 run).
    pub fresh_memfd: Rate,
    /// The same bytes over a Unix stream between two processes.
    pub stream: Rate,
    /// Through the daemon, one listener.
    pub one: Rate,
    /// Through the daemon, four listeners (bytes delivered to all).
    pub four: Rate,
}

/// The shared-memory huge-page setting, as the kernel shows it (the
/// bracketed word of `shmem_enabled`), or `unknown`.
pub fn shmem_huge_pages() -> String {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
        .ok()
        .and_then(|s| {
            let a = s.find('[')?;
            let b = s[a..].find(']')?;
            Some(s[a + 1..a + b].to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The large-data runs.
pub fn run(
    args: &BenchArgs,
    socket: &Path,
    raw_listener: &UnixListener,
    raw_path: &Path,
) -> Result<Rates, String> {
    let size = args.size;
    if size < 16 || !size.is_multiple_of(8) {
        return Err("--size for the data bench must be a multiple of 8, at least 16".into());
    }
    let messages = args.messages.unwrap_or_else(|| default_messages(size));

    // memcpy of the same bytes, from a filled buffer into another.
    let mut src = vec![0u8; size];
    fill(&mut src, 1);
    let mut dst = vec![0u8; size];
    let t = Instant::now();
    for i in 0..messages {
        dst.copy_from_slice(&src);
        std::hint::black_box(&mut dst);
        src[0] = i as u8;
    }
    let memcpy = Rate {
        bytes: messages * size as u64,
        secs: t.elapsed().as_secs_f64(),
    };

    // Fresh sealed memfds, written whole, no bus: the sender's side alone.
    let t = Instant::now();
    for i in 0..messages {
        let mut buf = PayloadBuffer::new(size).map_err(err("payload buffer"))?;
        fill(&mut buf, i);
        std::hint::black_box(buf.seal().map_err(err("seal"))?);
    }
    let fresh_memfd = Rate {
        bytes: messages * size as u64,
        secs: t.elapsed().as_secs_f64(),
    };

    // The same bytes over a Unix stream, written whole, read and checked.
    let raw_str = raw_path.to_string_lossy().into_owned();
    let mut sink = spawn(&[
        "bench",
        "--role",
        "raw-data-sink",
        "--raw",
        &raw_str,
        "--size",
        &size.to_string(),
        "--messages",
        &messages.to_string(),
    ])?;
    let (mut s, _) = raw_listener.accept().map_err(io_err("accept raw"))?;
    ready_line(&mut sink)?;
    let mut frame = vec![0u8; size];
    let t = Instant::now();
    for i in 0..messages {
        fill(&mut frame, i);
        s.write_all(&frame).map_err(io_err("raw write"))?;
    }
    let done = ready_line(&mut sink)?;
    let raw = Rate {
        bytes: messages * size as u64,
        secs: t.elapsed().as_secs_f64(),
    };
    if done != "done bad=0" {
        return Err(format!("raw sink said {done:?}"));
    }
    drop(s);
    drop(sink);

    let one = through_daemon(args, socket, messages, 1)?;
    let four = through_daemon(args, socket, messages, 4)?;
    Ok(Rates {
        memcpy,
        fresh_memfd,
        stream: raw,
        one,
        four,
    })
}

/// One sender to `listeners` listener processes through the daemon;
/// the rate counts bytes delivered (to all listeners together).
fn through_daemon(
    args: &BenchArgs,
    socket: &Path,
    messages: u64,
    listeners: usize,
) -> Result<Rate, String> {
    let size = args.size;
    let sock = socket.to_string_lossy().into_owned();
    let mut ls = Vec::new();
    for _ in 0..listeners {
        let mut l = spawn(&[
            "bench",
            "--role",
            "data-listener",
            "--socket",
            &sock,
            "--size",
            &size.to_string(),
            "--messages",
            &messages.to_string(),
        ])?;
        ready_line(&mut l)?;
        ls.push(l);
    }
    let bus = Bus::connect(socket).map_err(err("connect"))?;
    let sender = bus.open().map_err(err("open"))?;
    let t = Instant::now();
    for i in 0..messages {
        let mut buf = PayloadBuffer::new(size).map_err(err("payload buffer"))?;
        fill(&mut buf, i);
        let data = buf.seal().map_err(err("seal"))?;
        sender
            .send_wait(
                Outgoing::announcement(NAME, data),
                Some(Duration::from_secs(60)),
            )
            .map_err(err("send"))?;
    }
    for l in &mut ls {
        let done = ready_line(l)?;
        if done != "done bad=0 lost=0" {
            return Err(format!("a listener said {done:?}"));
        }
    }
    Ok(Rate {
        bytes: messages * size as u64 * listeners as u64,
        secs: t.elapsed().as_secs_f64(),
    })
}

/// The helper roles of the data bench; `None` if `role` is not one.
pub fn helper(role: &str, args: &BenchArgs, say: &dyn Fn(&str)) -> Option<Result<(), String>> {
    match role {
        "raw-data-sink" => Some((|| {
            let mut s = UnixStream::connect(args.raw.as_ref().ok_or("--raw")?)
                .map_err(io_err("connect raw"))?;
            say("ready");
            let mut frame = vec![0u8; args.size];
            let mut bad = 0;
            for _ in 0..args.messages.unwrap_or(0) {
                s.read_exact(&mut frame).map_err(io_err("raw read"))?;
                bad += u64::from(!verify(&frame));
            }
            say(&format!("done bad={bad}"));
            Ok(())
        })()),
        "data-listener" => Some((|| {
            let bus =
                Bus::connect(args.socket.as_ref().ok_or("--socket")?).map_err(err("connect"))?;
            let ep = bus.open().map_err(err("open"))?;
            ep.set_queue_limit(window(args.size))
                .map_err(err("limit"))?;
            ep.bind(NAME).map_err(err("bind"))?;
            say("ready");
            let (mut bad, mut lost, mut got) = (0u64, 0u64, 0u64);
            // A lost message counts towards the total too (reported on the
            // next one that arrives), so a loss shows as `lost`, not a stall.
            while got + lost < args.messages.unwrap_or(0) {
                got += 1;
                let m = ep
                    .recv_timeout(Some(Duration::from_secs(60)))
                    .map_err(err("recv"))?
                    .ok_or("listener starved for 60 s")?;
                bad += u64::from(m.data.len() != args.size || !verify(&m.data));
                lost += u64::from(m.lost);
            }
            say(&format!("done bad={bad} lost={lost}"));
            Ok(())
        })()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_verify() {
        let mut b = vec![0u8; 1 << 12];
        fill(&mut b, 7);
        assert!(verify(&b));
        b[100] ^= 1;
        assert!(!verify(&b));
        assert!(!verify(&b[..7]));
    }

    #[test]
    fn the_window_keeps_four_listeners_under_the_default_quota() {
        for size in [64 << 10, 1 << 20, 16 << 20, 32 << 20, 60 << 20] {
            // Four listeners' windows, and the sender's pending send.
            let held = (4 * u64::from(window(size)) + 1) * size as u64;
            assert!(
                held <= 320 << 20 && (size > 32 << 20 || held <= 256 << 20),
                "{size}: {held}"
            );
        }
    }
}
