//! `lamed openapi`: prints the HTTP API's OpenAPI document, the one
//! `lamed serve` answers at `GET /openapi.json` (one function builds both:
//! `lamed_server::openapi::text`).

use std::io::Write;

use anyhow::Context;

/// Prints the document on stdout.
///
/// # Errors
///
/// When stdout cannot be written.
pub fn run() -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    // `lamed openapi | head` ends quietly: main knows a broken pipe.
    writeln!(stdout, "{}", crate::server::openapi::text()).context("cannot write to stdout")
}
