//! Lamed's settings: every setting declared once ([`settings`]: flag,
//! `LAMED_*` variable, `config.json` key, default, help), and the resolved
//! configuration ([`config`]) that hands each layer its own typed options.
//!
//! It may import `lamed-core` and `lamed-store` (for the store's options):
//! never the services, the HTTP layer or the binary.
//!
//! # Layout
//!
//! - [`settings`]: the settings table.
//! - [`config`]: `config.json` plus flags and `LAMED_*` variables.

pub mod config;
pub mod settings;

pub use config::Config;
