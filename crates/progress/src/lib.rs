//! Progress of long commands on stderr: an indicatif bar or spinner on a
//! terminal, plain `lamed: ...` lines when stderr is a file or a pipe.
//!
//! Plain lines are what logs and tests read: a [`Bar`] prints one at most
//! every [`PLAIN_INTERVAL`] and one when it finishes, with the count, the
//! rate and the time left; a step ([`step`]) is always one line.
//!
//! A leaf: it may import no other lamed crate; any command layer (the
//! binary, `lamed deploy`) may use it.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::style::TemplateError;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Least time between two plain progress lines of one bar.
pub const PLAIN_INTERVAL: Duration = Duration::from_secs(2);

/// Whether progress is drawn (stderr is a terminal) or written as lines.
fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Progress through a known number of items: keys scanned, counters
/// written.
pub struct Bar {
    /// The drawn bar, on a terminal only.
    drawn: Option<ProgressBar>,
    /// What is counted, as the lines say it: `import: shop: counters written`.
    what: String,
    /// The unit of the count (`keys`, `counters`).
    unit: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    /// When the last plain line was written.
    last_line: Instant,
}

impl Bar {
    /// A bar of `total` items of `unit`.
    pub fn new(what: impl Into<String>, total: u64, unit: &'static str) -> Bar {
        let what = what.into();
        let drawn = on_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            // The template parses: the unit test builds it.
            bar.set_style(bar_style(unit).expect("a valid progress template"));
            bar.set_prefix(what.clone());
            // Drawn now, so a pass shorter than a tick still shows.
            bar.tick();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let now = Instant::now();
        Bar {
            drawn,
            what,
            unit,
            total,
            done: 0,
            started: now,
            last_line: now,
        }
    }

    /// `n` more items done.
    pub fn inc(&mut self, n: u64) {
        self.done = self.done.saturating_add(n);
        self.show();
    }

    /// About `n` more items done (a SCAN call's keys): the count stays
    /// short of the total until [`Bar::finish`].
    pub fn inc_estimated(&mut self, n: u64) {
        self.done = self
            .done
            .saturating_add(n)
            .min(self.total.saturating_sub(1));
        self.show();
    }

    /// A message line on stderr (a skipped key), above the bar on a
    /// terminal so the two do not overwrite each other.
    pub fn note(&self, line: &str) {
        match &self.drawn {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Draws the bar, or writes a plain line when the last is old enough.
    fn show(&mut self) {
        match &self.drawn {
            Some(bar) => bar.set_position(self.done.min(self.total)),
            None if self.last_line.elapsed() >= PLAIN_INTERVAL => {
                self.last_line = Instant::now();
                eprintln!("lamed: {}", self.line());
            }
            None => {}
        }
    }

    /// A plain line of where it is: `what: done/total unit (rate/s, Ns left)`.
    fn line(&self) -> String {
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            self.done as f64 / seconds
        } else {
            0.0
        };
        let left = if rate > 0.0 {
            format!(
                "{:.0} s left",
                self.total.saturating_sub(self.done) as f64 / rate
            )
        } else {
            "time left unknown".to_owned()
        };
        format!(
            "{}: {}/{} {} ({rate:.0}/s, {left})",
            self.what, self.done, self.total, self.unit
        )
    }

    /// Ends the bar: all `total` items done (a scan's estimate of its
    /// position ends exact).
    pub fn finish(mut self) {
        self.done = self.total;
        let seconds = self.started.elapsed().as_secs_f64();
        if let Some(bar) = self.drawn.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "lamed: {}: {} {} in {seconds:.1} s",
            self.what, self.total, self.unit
        );
    }
}

impl Drop for Bar {
    /// A bar left by an error is cleared, so the error is read on its own
    /// line.
    fn drop(&mut self) {
        if let Some(bar) = self.drawn.take() {
            bar.abandon();
        }
    }
}

/// How a [`Bar`] is drawn: `lamed: import: shop: keys scanned ===>
/// 1,200/5,000 keys (3,000/s, 1s left)`, the bar as wide as the terminal
/// leaves room for.
fn bar_style(unit: &str) -> Result<ProgressStyle, TemplateError> {
    Ok(ProgressStyle::with_template(&format!(
        "lamed: {{prefix}} [{{wide_bar}}] {{human_pos}}/{{human_len}} {unit} \
         ({{per_sec:0}}, {{eta}} left)"
    ))?
    .progress_chars("=> "))
}

/// How [`Steps`] are drawn: a spinner, what runs, the time since the start
/// and the last step.
fn spinner_style(what: &str) -> Result<ProgressStyle, TemplateError> {
    ProgressStyle::with_template(&format!("{{spinner}} {what} [{{elapsed}}] {{msg}}"))
}

/// The spinner of the running [`Steps`], if any: [`step`] prints above it.
static SPINNER: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A sequence of steps (`lamed deploy`): on a terminal, a spinner under
/// the steps done, naming the last one and the time since the start.
/// Ends when dropped.
pub struct Steps(());

impl Steps {
    /// Starts the spinner (on a terminal) for `what`: `deploying`.
    pub fn start(what: &str) -> Steps {
        if on_terminal() {
            let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            // The template parses: the unit test builds it.
            spinner.set_style(spinner_style(what).expect("a valid spinner template"));
            spinner.tick();
            spinner.enable_steady_tick(Duration::from_millis(120));
            *lock() = Some(spinner);
        }
        Steps(())
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        if let Some(spinner) = lock().take() {
            spinner.finish_and_clear();
        }
    }
}

/// The spinner's slot; a poisoned lock only means a panic elsewhere, the
/// slot itself stays valid.
fn lock() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    SPINNER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One step done, one line on stderr: `lamed: function lamed-track:
/// created`, printed above the spinner when one runs.
pub fn step(line: &str) {
    let text = format!("lamed: {line}");
    match lock().as_ref() {
        Some(spinner) => {
            spinner.println(&text);
            spinner.set_message(line.to_owned());
        }
        None => eprintln!("{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain line says the count, the total, the rate and the time
    /// left; with nothing done yet the time left is unknown.
    #[test]
    fn plain_line_has_rate_and_time_left() {
        let mut bar = Bar::new("import: shop: counters written", 10, "counters");
        assert!(
            bar.line()
                .ends_with("0/10 counters (0/s, time left unknown)"),
            "{}",
            bar.line()
        );
        bar.done = 4;
        bar.started = Instant::now() - Duration::from_secs(2);
        let line = bar.line();
        assert!(
            line.starts_with("import: shop: counters written: 4/10 counters (2/s, 3 s left)"),
            "{line}"
        );
    }

    /// The templates parse (a terminal draws them; tests have none).
    #[test]
    fn templates_parse() {
        assert!(bar_style("keys").is_ok());
        assert!(spinner_style("deploying").is_ok());
    }
}
