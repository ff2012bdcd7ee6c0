//! One message to one endpoint, until it is delivered or given up: its
//! state (kept in the store, so a restart resumes it), the retry
//! schedule (exponential backoff with jitter for at least a day,
//! `Retry-After` honoured) and the HTTP POST that sends it.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use super::format::Format;

/// How long one attempt may take, connecting included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// The retry schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait after the first failed attempt; each next one is three
    /// times longer, up to `cap`.
    pub first_ms: i64,
    /// The longest wait between two attempts (and the longest
    /// `Retry-After` honoured).
    pub cap_ms: i64,
    /// Failed attempts stop once one fails this long after the first.
    pub give_up_after_ms: i64,
}

impl Default for Backoff {
    /// 5 s, 15 s, 45 s... up to 10 h apart, for 24 h: 15 attempts.
    fn default() -> Self {
        Backoff {
            first_ms: 5_000,
            cap_ms: 10 * 3_600_000,
            give_up_after_ms: 24 * 3_600_000,
        }
    }
}

impl Backoff {
    /// The wait after `failures` failed attempts (1 for the first), with
    /// `jitter` in [0, 1) spreading it by ±20% so that endpoints
    /// recovering from an outage are not hit by every sender at once.
    pub fn wait_ms(&self, failures: u32, jitter: f64) -> i64 {
        let exponent = failures.saturating_sub(1).min(40);
        let base = (self.first_ms as f64 * 3f64.powi(exponent as i32)).min(self.cap_ms as f64);
        let spread = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
        (base * spread).round().max(1.0) as i64
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// To be sent (again) at `next_ms`.
    Pending,
    /// A 2xx answer came.
    Delivered,
    /// Given up after a day of failures (or a permanent refusal).
    Failed,
    /// The endpoint answered 410 Gone: it takes nothing more.
    Disabled,
}

/// One attempt's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Attempt {
    /// When it started, Unix milliseconds.
    pub at_ms: i64,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// Why no answer came (connect, timeout), when none did.
    pub error: Option<String>,
}

/// One message to one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Delivery {
    /// The `webhook-id`: the same on every attempt.
    pub id: String,
    /// The endpoint's URL.
    pub url: String,
    /// The body's format.
    pub format: Format,
    /// The event type (`experiment.srm`...).
    pub event: String,
    /// The namespace.
    pub namespace: String,
    /// The experiment.
    pub experiment: String,
    /// The body, built once: every attempt sends the same bytes.
    pub body: String,
    /// When it was created (the `webhook-timestamp` is each attempt's own).
    pub created_ms: i64,
    /// Where it stands.
    pub state: State,
    /// When the next attempt is due (for a pending one).
    pub next_ms: i64,
    /// An instance sending it holds it until then; another takes it over
    /// only after (the sender died mid-attempt).
    #[serde(default)]
    pub lease_until_ms: i64,
    /// Every attempt so far, oldest first.
    pub attempts: Vec<Attempt>,
}

/// What an attempt got back.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An HTTP answer, with its `Retry-After` in seconds when it had one.
    Answer {
        /// The status code.
        status: u16,
        /// `Retry-After`, in seconds (only the delay form).
        retry_after_s: Option<u64>,
    },
    /// No answer (refused, reset, timed out): why.
    NoAnswer(String),
}

impl Delivery {
    /// Records an attempt made at `now_ms` and what came of it, and
    /// schedules the next one; `jitter` in [0, 1).
    pub fn record(&mut self, now_ms: i64, outcome: Outcome, backoff: &Backoff, jitter: f64) {
        let failures = self
            .attempts
            .iter()
            .filter(|a| !a.status.is_some_and(|s| (200..300).contains(&s)))
            .count() as u32
            + 1;
        let (status, error, retry_after_s) = match outcome {
            Outcome::Answer {
                status,
                retry_after_s,
            } => (Some(status), None, retry_after_s),
            Outcome::NoAnswer(why) => (None, Some(why), None),
        };
        self.attempts.push(Attempt {
            at_ms: now_ms,
            status,
            error,
        });
        self.lease_until_ms = 0;
        match status {
            Some(200..=299) => self.state = State::Delivered,
            Some(410) => self.state = State::Disabled,
            _ => {
                let first = self.attempts.first().map_or(now_ms, |a| a.at_ms);
                if now_ms - first >= backoff.give_up_after_ms {
                    self.state = State::Failed;
                    return;
                }
                let mut wait = backoff.wait_ms(failures, jitter);
                if let (Some(429 | 503), Some(seconds)) = (status, retry_after_s) {
                    let asked = i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
                    wait = wait.max(asked.min(backoff.cap_ms));
                }
                self.next_ms = now_ms + wait;
            }
        }
    }
}

/// Sends one POST and reads the status, within [`ATTEMPT_TIMEOUT`].
/// HTTPS verifies the endpoint's certificate against the system's roots.
pub async fn post(url: &str, headers: &[(&str, String)], body: &str, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, post_unbounded(url, headers, body)).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(why)) => Outcome::NoAnswer(why),
        Err(_) => Outcome::NoAnswer(format!("no answer within {} s", timeout.as_secs())),
    }
}

async fn post_unbounded(
    url: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Result<Outcome, String> {
    let parsed: http::Uri = url.parse().map_err(|e| format!("invalid url {url}: {e}"))?;
    let https = match parsed.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("url {url} is neither http nor https")),
    };
    let host = parsed
        .host()
        .ok_or_else(|| format!("url {url} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port_u16().unwrap_or(if https { 443 } else { 80 });
    let stream = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let authority = parsed
        .authority()
        .map_or_else(|| host.clone(), |a| a.as_str().to_owned());
    let path = parsed
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("lamed-webhooks/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    if https {
        let name = lamed_client::tls::server_name(&host).map_err(|e| format!("{e:#}"))?;
        let stream = lamed_client::tls::system_connector()?
            .connect(name, stream)
            .await
            .map_err(|e| format!("tls with {host}: {e}"))?;
        exchange(TokioIo::new(stream), request).await
    } else {
        exchange(TokioIo::new(stream), request).await
    }
}

async fn exchange<IO>(io: IO, request: hyper::Request<Full<Bytes>>) -> Result<Outcome, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response.status().as_u16();
    let retry_after_s = response
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // Read (and drop) the body so the answer is complete, whatever it says.
    let _ = response.into_body().collect().await;
    Ok(Outcome::Answer {
        status,
        retry_after_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            id: "msg_1".into(),
            url: "http://127.0.0.1:1/".into(),
            format: Format::Standard,
            event: "experiment.srm".into(),
            namespace: "ns".into(),
            experiment: "e".into(),
            body: "{}".into(),
            created_ms: 0,
            state: State::Pending,
            next_ms: 0,
            lease_until_ms: 0,
            attempts: vec![],
        }
    }

    fn answer(status: u16) -> Outcome {
        Outcome::Answer {
            status,
            retry_after_s: None,
        }
    }

    /// The default schedule retries for at least 24 h, waits growing
    /// threefold up to 10 h, jitter within ±20%.
    #[test]
    fn retries_back_off_exponentially_for_a_day() {
        let backoff = Backoff::default();
        assert_eq!(backoff.wait_ms(1, 0.5), 5_000);
        assert_eq!(backoff.wait_ms(2, 0.5), 15_000);
        assert_eq!(backoff.wait_ms(3, 0.5), 45_000);
        assert_eq!(backoff.wait_ms(30, 0.5), 10 * 3_600_000);
        assert_eq!(backoff.wait_ms(1, 0.0), 4_000);
        assert_eq!(backoff.wait_ms(1, 0.999_999), 6_000);
        let mut d = delivery();
        let mut now = 0;
        while d.state == State::Pending {
            d.record(now, answer(500), &backoff, 0.0);
            now = d.next_ms;
        }
        assert_eq!(d.state, State::Failed);
        let last = d.attempts.last().unwrap().at_ms;
        assert!(
            last >= 24 * 3_600_000,
            "gave up after {} h",
            last / 3_600_000
        );
        assert!(
            last <= 40 * 3_600_000,
            "gave up after {} h",
            last / 3_600_000
        );
        assert!(d.attempts.len() >= 10, "{} attempts", d.attempts.len());
    }

    #[test]
    fn a_2xx_delivers_and_410_disables() {
        let backoff = Backoff::default();
        let mut d = delivery();
        d.record(0, answer(500), &backoff, 0.5);
        assert_eq!((d.state, d.next_ms), (State::Pending, 5_000));
        d.record(5_000, answer(204), &backoff, 0.5);
        assert_eq!(d.state, State::Delivered);
        let mut gone = delivery();
        gone.record(0, answer(410), &backoff, 0.5);
        assert_eq!(gone.state, State::Disabled);
        let mut refused = delivery();
        refused.record(0, Outcome::NoAnswer("refused".into()), &backoff, 0.5);
        assert_eq!(refused.state, State::Pending);
        assert_eq!(refused.attempts[0].error.as_deref(), Some("refused"));
    }

    /// 429 with `Retry-After: 120` waits 120 s rather than 5 s; a
    /// `Retry-After` beyond the cap waits the cap.
    #[test]
    fn retry_after_is_honoured() {
        let backoff = Backoff::default();
        let mut d = delivery();
        d.record(
            0,
            Outcome::Answer {
                status: 429,
                retry_after_s: Some(120),
            },
            &backoff,
            0.5,
        );
        assert_eq!(d.next_ms, 120_000);
        let mut far = delivery();
        far.record(
            0,
            Outcome::Answer {
                status: 429,
                retry_after_s: Some(10_000_000),
            },
            &backoff,
            0.5,
        );
        assert_eq!(far.next_ms, backoff.cap_ms);
    }
}
