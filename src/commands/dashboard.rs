//! `lamed dashboard`: opens the built-in dashboard in the default browser,
//! or prints its URL where there is no browser (a server over SSH).

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::Context;

use crate::cli::DashboardArgs;
use crate::config::Config;

/// Prints the dashboard URL and, where a desktop session exists, opens it.
///
/// # Errors
///
/// An invalid configuration.
pub fn run(args: DashboardArgs) -> anyhow::Result<()> {
    let url = match args.url {
        Some(url) => url,
        None => {
            let config = Config::load(args.store.overrides())?;
            crate::snippet::dashboard_url(&config.base_url(config.listen))
        }
    };
    writeln!(std::io::stdout(), "{url}").context("cannot write to stdout")?;
    if args.no_browser {
        return Ok(());
    }
    match browser_command() {
        Some(opener) => {
            let started = Command::new(opener)
                .arg(&url)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            if let Err(err) = started {
                eprintln!("lamed: cannot start {opener} ({err}); open the URL above yourself");
            }
        }
        None => eprintln!("lamed: no desktop session here; open the URL above in a browser"),
    }
    Ok(())
}

/// The platform's "open this URL" command, when a desktop can show it.
fn browser_command() -> Option<&'static str> {
    if cfg!(target_os = "macos") {
        Some("open")
    } else if cfg!(windows) {
        Some("explorer")
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        Some("xdg-open")
    } else {
        None
    }
}
