//! Lamed on AWS: the Lambda entry (the `lamed` binary answering API
//! Gateway events through the same router and services as `lamed serve`)
//! and `lamed deploy`, `preflight` and `destroy` (feature `sdk`).
//!
//! It may import every layer below the binary (`lamed-server`,
//! `lamed-config`, `lamed-store`, `lamed-core`, `lamed-progress`): never
//! the binary's command line. Its commands take their own options
//! ([`args`]), which the binary embeds.
//!
//! # Layout
//!
//! - [`args`]: the options of the AWS commands.
//! - [`lambda`]: the Lambda entry.
//! - `deploy` (feature `sdk`): `lamed deploy`, `preflight` and `destroy`.

pub mod args;
#[cfg(feature = "sdk")]
pub mod deploy;
pub mod lambda;
