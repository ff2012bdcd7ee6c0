//! A private `moto_server` (the AWS API emulator) for tests: on a free
//! loopback port, stopped by PID when the last test holding it drops it
//! (also when a test panics). Every test starts moto here.
//!
//! It runs through `scripts/moto_server.py`, moto's server with two
//! changes that keep its answers: one request at a time (moto takes no
//! lock, so concurrent requests would interleave inside one transaction,
//! which DynamoDB's per-item atomicity never shows the store), and a
//! `TransactWriteItems` that snapshots, for its rollback, only the items
//! it names instead of deep-copying the whole table, so that a
//! transaction costs what it touches, not the table's size. Conflicts
//! between concurrent transactions (which DynamoDB cancels with
//! `TransactionConflict`) are not emulated. Moto also ignores
//! `ClientRequestToken` and never expires items by TTL: no test relies on
//! either.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

/// The deadline of a store call in tests: moto answers one request at a
/// time, so a batch of a few hundred events on a loaded machine takes
/// longer than DynamoDB would (the default is 10 s).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The region the tests use.
pub const REGION: &str = "us-east-1";

/// A running `moto_server`, killed by PID when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    /// Its URL, the endpoint of the SDK.
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python of the test venv (`scripts/aws-test-env.sh`, which installs
/// moto on first use and prints `moto_server`'s path).
pub fn venv_python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let output = Command::new("bash")
                .arg(script("aws-test-env.sh"))
                .stderr(Stdio::inherit())
                .output()
                .expect("run scripts/aws-test-env.sh");
            assert!(output.status.success(), "scripts/aws-test-env.sh failed");
            let moto = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            moto.with_file_name("python")
        })
        .clone()
}

/// A file of the repository's `scripts/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

impl Moto {
    /// Starts a private moto_server and waits until it listens.
    pub fn start() -> Moto {
        let port = free_port();
        let mut child = Command::new(venv_python())
            .arg(script("moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Errors only (the launcher drops moto's request log): a moto
            // the launcher refuses says why here.
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start moto_server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto_server exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// One moto shared by the tests of this process that run at the same
    /// time (a static keeps only a `Weak`, so the last holder stops it);
    /// tests sharing it use distinct tables ([`unique_table`]).
    pub fn shared() -> Arc<Moto> {
        static SHARED: Mutex<Weak<Moto>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(moto) = shared.upgrade() {
            return moto;
        }
        let moto = Arc::new(Moto::start());
        *shared = Arc::downgrade(&moto);
        moto
    }

    /// The SDK's configuration for this server: static test credentials,
    /// the test region.
    pub fn sdk(&self) -> aws_config::SdkConfig {
        let credentials =
            aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "static");
        aws_config::SdkConfig::builder()
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                credentials,
            ))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .http_client(super::sdk::https_client())
            .build()
    }
}

/// A table name no other test of this process uses.
pub fn unique_table(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("lamed-{label}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Creates `table` with a key schema that is not lamed's (a numeric hash
/// key `id`): what the store and `lamed deploy` must refuse to use.
///
/// # Panics
///
/// When the table cannot be created.
pub async fn create_foreign_table(client: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .expect("attribute definition"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .send()
        .await
        .expect("create a foreign table");
}
