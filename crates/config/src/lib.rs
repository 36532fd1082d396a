//! The TOML model of services, strategies, checks and rules, and its validation with
//! precise error messages (file, line, column, snippet, what is allowed, and a
//! suggestion for typos).

pub mod duration;
pub mod model;

pub use duration::Duration;
pub use model::*;
