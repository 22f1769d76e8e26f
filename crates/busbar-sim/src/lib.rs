//! # busbar-sim: the deterministic simulation host
//!
//! [`SimHost`] implements the kernel's [`Host`] with a fake clock, a recorded
//! alarm, recorded wake-ups and a seeded RNG, so a kernel under simulation is
//! a pure function of its seed and the operations fed to it. [`run_seeds`]
//! runs a scenario for many seeds and, on failure, names the seed; setting
//! `BUSBAR_SIM_SEED` replays exactly that one.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use busbar_kernel::{BusId, EndpointId, Host, HostToken, Kernel, KernelConfig, Level, Nanos};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A wake-up the kernel asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wake {
    /// The bus.
    pub bus: BusId,
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Whether the endpoint is readable now.
    pub readable: bool,
}

/// A host with a fake clock, for deterministic tests.
pub struct SimHost {
    /// Fake monotonic time; advance it with [`SimHost::advance`].
    pub now: Nanos,
    /// The alarm the kernel armed, if any.
    pub alarm: Option<Nanos>,
    /// Wake-ups not yet collected by the scheduler.
    pub wakes: Vec<Wake>,
    /// Log lines, kept for failure reports (the last [`SimHost::LOG_KEEP`]).
    pub log: Vec<String>,
    rng: SmallRng,
}

impl fmt::Debug for SimHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHost")
            .field("now", &self.now)
            .field("alarm", &self.alarm)
            .field("wakes", &self.wakes.len())
            .finish_non_exhaustive()
    }
}

impl SimHost {
    /// How many log lines are kept.
    pub const LOG_KEEP: usize = 200;

    /// A host whose entropy comes from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            now: 0,
            alarm: None,
            wakes: Vec::new(),
            log: Vec::new(),
            rng: SmallRng::seed_from_u64(seed ^ 0x5eed_b05b_a500_0001),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, by: Nanos) {
        self.now += by;
    }

    /// Is the alarm due?
    pub fn alarm_due(&self) -> bool {
        self.alarm.is_some_and(|a| a <= self.now)
    }
}

impl Host for SimHost {
    fn now(&mut self) -> Nanos {
        self.now
    }
    fn set_alarm(&mut self, at: Option<Nanos>) {
        self.alarm = at;
    }
    fn wake(&mut self, bus: BusId, endpoint: EndpointId, _: HostToken, readable: bool) {
        self.wakes.push(Wake {
            bus,
            endpoint,
            readable,
        });
    }
    fn log(&mut self, level: Level, message: fmt::Arguments<'_>) {
        if self.log.len() >= Self::LOG_KEEP {
            self.log.remove(0);
        }
        self.log.push(format!("t={} {level:?} {message}", self.now));
    }
    fn entropy(&mut self) -> u64 {
        self.rng.random()
    }
}

/// A kernel under simulation with its own seeded RNG for the scenario.
pub struct Sim {
    /// The kernel (its host is a [`SimHost`]).
    pub kernel: Kernel<SimHost>,
    /// The scenario's RNG (separate from the host's).
    pub rng: SmallRng,
    /// The seed this run started from.
    pub seed: u64,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// A simulation from `seed`.
    pub fn new(seed: u64, config: KernelConfig) -> Self {
        Self {
            kernel: Kernel::new(SimHost::new(seed), config).expect("valid config"),
            rng: SmallRng::seed_from_u64(seed),
            seed,
        }
    }

    /// Advances the fake clock by up to `max` ns (random) and fires the
    /// alarm if it came due.
    pub fn tick(&mut self, max: Nanos) {
        let by = self.rng.random_range(0..=max);
        self.kernel.host_mut().advance(by);
        if self.kernel.host().alarm_due() {
            self.kernel.handle_alarm();
        }
    }

    /// Takes the wake-ups recorded since the last call.
    pub fn take_wakes(&mut self) -> Vec<Wake> {
        std::mem::take(&mut self.kernel.host_mut().wakes)
    }
}

/// Runs `scenario` for `count` seeds starting at `first` (or only for
/// `$BUSBAR_SIM_SEED` if set). A failing seed is printed with the command to
/// replay it, then the failure is re-raised.
pub fn run_seeds(name: &str, first: u64, count: u64, scenario: impl Fn(u64)) {
    let seeds: Vec<u64> = match std::env::var("BUSBAR_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("BUSBAR_SIM_SEED must be a u64")],
        Err(_) => (first..first + count).collect(),
    };
    for seed in seeds {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| scenario(seed))) {
            eprintln!(
                "simulation {name} failed with seed {seed}; replay with BUSBAR_SIM_SEED={seed} cargo test -p busbar-sim {name}"
            );
            resume_unwind(e);
        }
    }
}
