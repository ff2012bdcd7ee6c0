//! A real local webhook endpoint for the alert tests:
//! `scripts/webhook_receiver.py`, which verifies every delivery with the
//! reference Standard Webhooks library (PyPI `standardwebhooks`), not with
//! lamed's own code.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::test_venv_bin;

/// A running receiver and what it heard, one JSON object per request.
pub struct Receiver {
    child: Child,
    /// Its endpoint's URL.
    pub url: String,
    heard: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    /// `secret` `-` for an unsigned (Slack) endpoint; `plan` the statuses
    /// answered in order ("500,500,500"), then 200.
    pub fn start(secret: &str, plan: &str) -> Receiver {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/webhook_receiver.py");
        let mut child = Command::new(test_venv_bin().join("python"))
            .args([script, secret, plan])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the webhook receiver");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().expect("a first line").expect("readable");
        let port = first
            .strip_prefix("listening ")
            .expect("the receiver says its port")
            .to_owned();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        std::thread::spawn(move || {
            for line in lines {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line).expect("a JSON line");
                sink.lock().unwrap().push(value);
            }
        });
        Receiver {
            child,
            url: format!("http://127.0.0.1:{port}/hook"),
            heard,
        }
    }

    pub fn heard(&self) -> Vec<Value> {
        self.heard.lock().unwrap().clone()
    }

    /// Waits until it heard `n` requests (at most `limit`).
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let heard = self.heard();
            if heard.len() >= n {
                return heard;
            }
            assert!(
                start.elapsed() < limit,
                "heard {} of {n} requests in {limit:?}: {heard:#?}",
                heard.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
