//! Feeds arbitrary bytes, split into request frames as the daemon splits a
//! connection's stream, into a kernel: whatever the requests, the kernel
//! answers each with a result, never panics, and fails only with an error
//! its operation-table row lists. Bus and endpoint ids are
//! folded into a small range so most requests reach real buses and
//! endpoints rather than failing the lookup.
#![no_main]

use busbar_kernel::{
    BusId, Credentials, EndpointId, Host, HostToken, Kernel, KernelConfig, Level, Nanos,
    Operations, Quota,
};
use busbar_wire::{FrameReader, parse_request};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Default)]
struct FuzzHost {
    now: Nanos,
}

impl Host for FuzzHost {
    fn now(&mut self) -> Nanos {
        // Time moves forward a little on every look, so deadlines expire.
        self.now += 1_000_000;
        self.now
    }
    fn set_alarm(&mut self, _: Option<Nanos>) {}
    fn wake(&mut self, _: BusId, _: EndpointId, _: HostToken, _: bool) {}
    fn log(&mut self, _: Level, _: core::fmt::Arguments<'_>) {}
    fn entropy(&mut self) -> u64 {
        7
    }
}

fuzz_target!(|data: &[u8]| {
    // Small limits, so full queues, set-aside lists and quotas are reached.
    let config = KernelConfig {
        buses: 2,
        default_queue_limit: 4,
        set_aside_limit: 4,
        max_buses: 4,
        quota: Quota {
            messages: 8,
            bytes: 4096,
            handles: 8,
            fds: 8,
        },
        ..KernelConfig::default()
    };
    let Ok(mut k) = Kernel::new(FuzzHost::default(), config) else {
        return;
    };
    for bus in [BusId(0), BusId(1)] {
        for _ in 0..3 {
            let _ = k.open(bus, EndpointId::BUS, Credentials::default());
        }
    }
    let mut r = FrameReader::new(1 << 16);
    r.buffer().extend_from_slice(data);
    while let Ok(Some(f)) = r.next_frame() {
        let Ok(w) = parse_request(&f) else { continue };
        let bus = BusId(w.bus % 3);
        let ep = EndpointId(w.endpoint % 6);
        let op = w.request.code();
        if let Err(e) = k.dispatch(bus, ep, w.request) {
            assert!(
                op.errors().contains(&e),
                "{} failed {e:?}, which its row does not list",
                op.name()
            );
        }
    }
});
