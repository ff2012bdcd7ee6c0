//! Running lamed for real, against the real binary: backup and restore,
//! upgrades, HTTPS refusals, the systemd unit, goal values and adaptive
//! weights. One test binary with a module per theme: each binary links the
//! whole crate, so fewer binaries make the test command faster.

#[path = "../util/mod.rs"]
mod util;

mod backup;
mod packaging;
mod power_cut;
mod tls;
mod upgrade;
mod values;
