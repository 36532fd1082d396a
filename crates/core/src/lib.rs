//! Pure decision logic for rampart: no I/O, no sockets, no sleeps.
//!
//! Everything here is a function of its inputs and of an injected [`clock::Clock`],
//! so every decision (judges, the rollout state machine, later the autoscaler and
//! incident rules) is unit-testable and replayable.

pub mod analysis;
pub mod autoscale;
pub mod clock;
pub mod escalation;
pub mod health_score;
pub mod histogram;
pub mod incident;
pub mod judge;
pub mod notify;
pub mod rollout;
pub mod sample;
pub mod series;
pub mod version;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use histogram::LatencyHistogram;
pub use sample::{SetSample, WindowSample};
