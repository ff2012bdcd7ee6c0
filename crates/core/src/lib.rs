//! Lamed's domain, without I/O: what an event, a name, a value and an
//! experiment's record are, and the rules about them.
//!
//! It may import only `lamed-stats` (and third-party crates): no store, no
//! settings, no HTTP framework. Whatever reads or writes them sits above.
//!
//! # Layout
//!
//! - [`clock`]: the time stores read (system, or manual in tests), and
//!   calendar days.
//! - [`names`]: the names events and records carry, their limits and
//!   rules.
//! - [`model`]: events, caps, outcomes.
//! - [`value`]: numeric goal values: exact micro-units, limits, limbs.
//! - [`registry`]: experiments as objects: records, lifecycle,
//!   registration mode.
//! - [`adaptive`]: how an experiment adapts (its record's `adaptive` part).
//! - [`sixpack`]: Sixpack's API rules: names, deterministic assignment and
//!   traffic fraction, counting ids, JSON answers.
//! - [`bots`]: bot filtering: the rules, npm isbot's crawler list, the
//!   visitor (user agent, client address) of a request.
//! - [`results`]: Lamed's `/experiments` JSON shape, built from counters.
//! - [`segments`]: the dimensions results break down by, their values, cap
//!   and counters; [`segmenter`]: a request's segment (User-Agent rules of
//!   uap-core, country).

pub mod adaptive;
pub mod bots;
pub mod clock;
pub mod model;
pub mod names;
pub mod registry;
pub mod results;
pub mod segmenter;
pub mod segments;
pub mod sixpack;
pub mod value;
