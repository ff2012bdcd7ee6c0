//! The `lamed` subcommands besides `serve`: each reads its arguments and
//! prints data on stdout, messages on stderr.

pub mod aws;
pub mod configure;
pub mod dashboard;
pub mod experiments;
pub mod report;
