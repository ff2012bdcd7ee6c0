//! Signing per Standard Webhooks 1.0: a `whsec_<base64>` secret, and the
//! headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 of HMAC-SHA256 over "id.timestamp.body">`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{KeyInit, Mac};

/// A signing secret's key bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not `whsec_` followed by base64.
    #[error(
        "webhook secret must be 'whsec_' followed by base64 (as Standard Webhooks secrets are)"
    )]
    Malformed,
    /// Too short to be a key.
    #[error("webhook secret must hold 24 to 64 bytes once decoded, not {0}")]
    Length(usize),
}

impl Secret {
    /// Parses `whsec_<base64>`.
    ///
    /// # Errors
    ///
    /// Another prefix, bad base64, or a key outside 24–64 bytes (the
    /// specification's range).
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let encoded = text.strip_prefix("whsec_").ok_or(SecretError::Malformed)?;
        let key = BASE64.decode(encoded).map_err(|_| SecretError::Malformed)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Secret(key))
    }

    /// The `webhook-signature` value of one message: `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // The key of HMAC may be any length: `new_from_slice` cannot fail.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// The three headers of one signed message.
pub fn headers(
    secret: &Secret,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    [
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", secret.sign(id, timestamp, body)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's own example (standard-webhooks.com, the
    /// reference libraries' test vector): this secret, id, timestamp and
    /// body sign to this value.
    #[test]
    fn the_specification_example_signs_as_published() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let signature = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn malformed_secrets_are_refused() {
        assert_eq!(
            Secret::parse("MfKQ9r8GKYqrTwjU"),
            Err(SecretError::Malformed)
        );
        assert_eq!(Secret::parse("whsec_!!!"), Err(SecretError::Malformed));
        assert_eq!(Secret::parse("whsec_AAAA"), Err(SecretError::Length(3)));
        assert_eq!(
            format!(
                "{:?}",
                Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            ),
            "Ok(Secret(<redacted>))"
        );
    }
}
