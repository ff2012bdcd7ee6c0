//! `lamed preflight`, also run by `lamed deploy` before any change: the
//! config, the store the functions will count in (Redis: PING and its
//! eviction policy; DynamoDB: the table reachable and lamed's, or to be
//! created, and the policy scoped to it), the AWS region, credentials and
//! identity, and a Linux executable for the target architecture, packaged
//! within AWS Lambda's size limits. Every failure says how to fix it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;
use aws_sdk_sts::config::ProvideCredentials;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::plan::Counting;
use super::{dynamodb, iam, package, plan, sdk_config, sdk_error};
use crate::args::AwsArgs;
use lamed_config::config::{Config, Overrides};
use lamed_store::redis::{eviction_refusal, RedisNode};

/// The fix for a missing region.
pub const NO_REGION: &str =
    "no AWS region: pass --region, set AWS_REGION, or set `region` in ~/.aws/config";

/// How long a Redis node may take to answer PING and INFO.
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the credential chain may take (instance metadata can be slow).
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(15);

/// What deploy needs once the checks passed.
pub struct Ready {
    /// The configuration.
    pub config: Config,
    /// The AWS configuration (region, credentials, endpoint).
    pub sdk: SdkConfig,
    /// The region.
    pub region: String,
    /// The executable to upload.
    pub bootstrap: PathBuf,
    /// It packaged: stripped, zipped, within AWS Lambda's limits.
    pub package: package::Package,
}

/// One check's outcome.
struct Check {
    name: &'static str,
    outcome: Result<String, String>,
}

/// Runs `lamed preflight`.
///
/// # Errors
///
/// When any check fails (each is printed with its fix).
pub async fn run(args: AwsArgs) -> anyhow::Result<()> {
    prepare(&args, true).await?;
    eprintln!("lamed: all checks passed; next: lamed deploy");
    Ok(())
}

/// Runs the checks and prints them on stderr. With `network` false (deploy
/// `--no-preflight`), Redis and the caller identity are not contacted; the
/// config, the region, the credentials and the bootstrap are still needed.
/// The bootstrap is packaged first and AWS is asked for the identity only
/// when it passed: a bootstrap AWS would refuse costs no AWS call.
///
/// # Errors
///
/// When a check fails: nothing has been changed yet.
pub async fn prepare(args: &AwsArgs, network: bool) -> anyhow::Result<Ready> {
    let mut checks = Vec::new();

    // Where the functions will count, once the config is planned.
    let mut counting = None;
    let config = Config::load(Overrides {
        config: args.config.clone(),
        ..Overrides::default()
    });
    let config = match config {
        Ok(config) => {
            let source = config
                .source
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "no config file found".to_owned());
            let planned = plan::plan(&config, args.arch);
            counting = planned.as_ref().ok().map(|plan| plan.counting.clone());
            checks.push(Check {
                name: "config",
                outcome: match planned {
                    Ok(_) => Ok(source),
                    Err(err) => Err(format!("{err:#}\n  fix: lamed configure")),
                },
            });
            Some(config)
        }
        Err(err) => {
            checks.push(Check {
                name: "config",
                outcome: Err(format!("{err}\n  fix: lamed configure")),
            });
            None
        }
    };

    if let Some(Counting::Redis) = &counting {
        let target = config
            .as_ref()
            .and_then(|config| config.redis.as_ref())
            .context("counting on redis without a redis")?;
        let outcome = if network {
            ping_all(&target.nodes)
                .await
                .map(|notes| format!("{} answers PING{notes}", target.redacted()))
        } else {
            Ok(format!("{} (not contacted)", target.redacted()))
        };
        checks.push(Check {
            name: "redis",
            outcome,
        });
    }

    let bootstrap = package::choose_bootstrap(args.bootstrap.as_deref(), args.arch)
        .and_then(|path| package::package(&path).map(|package| (path, package)));

    let sdk = sdk_config(args.region.as_deref(), args.endpoint_url.as_deref()).await;
    let region = sdk.region().map(|r| r.to_string());
    checks.push(Check {
        name: "aws region",
        outcome: region.clone().ok_or_else(|| NO_REGION.to_owned()),
    });
    let credentials = check_credentials(&sdk).await;
    let have_credentials = credentials.is_ok();
    checks.push(Check {
        name: "aws credentials",
        outcome: credentials,
    });
    if network && have_credentials && region.is_some() && bootstrap.is_ok() {
        checks.push(Check {
            name: "aws identity",
            outcome: identity(&sdk).await,
        });
    }
    if let Some(table) = counting.as_ref().and_then(Counting::table) {
        // As for the identity: a bootstrap AWS would refuse costs no AWS call.
        let reachable = network && have_credentials && region.is_some() && bootstrap.is_ok();
        checks.push(Check {
            name: "dynamodb",
            outcome: if reachable {
                dynamodb::check(&sdk, table).await
            } else {
                Ok(format!("table {table} (not contacted)"))
            },
        });
        checks.push(Check {
            name: "dynamodb policy",
            outcome: if reachable {
                iam::check_policy(&aws_sdk_iam::Client::new(&sdk), table).await
            } else {
                Ok(iam::scope(table))
            },
        });
    }

    checks.push(Check {
        name: "bootstrap",
        outcome: match &bootstrap {
            Ok((path, package)) => Ok(format!(
                "{} (Linux {}; {}){}",
                path.display(),
                args.arch.lambda_name(),
                package.summary(),
                if args.bootstrap.is_none() {
                    "; it must run on Amazon Linux 2023 (glibc 2.34): a cargo lambda or musl build is safest"
                } else {
                    ""
                }
            )),
            Err(err) => Err(format!("{err:#}")),
        },
    });

    let mut failed = 0;
    for check in &checks {
        match &check.outcome {
            Ok(detail) => lamed_progress::step(&format!("ok    {}: {detail}", check.name)),
            Err(problem) => {
                failed += 1;
                lamed_progress::step(&format!("FAIL  {}: {problem}", check.name));
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} preflight check(s) failed; nothing was changed");
    }
    let (Some(config), Some(region), Ok((bootstrap, package))) = (config, region, bootstrap) else {
        anyhow::bail!("preflight incomplete");
    };
    Ok(Ready {
        config,
        sdk,
        region,
        bootstrap,
        package,
    })
}

async fn check_credentials(sdk: &SdkConfig) -> Result<String, String> {
    const FIX: &str = "  fix: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, \
                       or run `aws configure` (or `aws sso login`)";
    let Some(provider) = sdk.credentials_provider() else {
        return Err(format!("no AWS credentials provider\n{FIX}"));
    };
    match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(credentials)) => Ok(format!(
            "found (access key id ending {})",
            credentials
                .access_key_id()
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<String>()
        )),
        Ok(Err(err)) => Err(format!("no AWS credentials found ({err})\n{FIX}")),
        Err(_) => Err(format!(
            "no AWS credentials found in {CREDENTIALS_TIMEOUT:?}\n{FIX}"
        )),
    }
}

async fn identity(sdk: &SdkConfig) -> Result<String, String> {
    let sts = aws_sdk_sts::Client::new(sdk);
    match sts.get_caller_identity().send().await {
        Ok(who) => Ok(format!(
            "account {}, {}",
            who.account().unwrap_or("?"),
            who.arn().unwrap_or("?")
        )),
        Err(err) => Err(format!(
            "{:#}\n  fix: check that the credentials are valid and not expired, and the region exists",
            sdk_error(err)
        )),
    }
}

/// PINGs every node and refuses one whose eviction policy the Redis store
/// would refuse. Returns notes for the ok line.
async fn ping_all(nodes: &[RedisNode]) -> Result<String, String> {
    let mut notes = String::new();
    for node in nodes {
        match tokio::time::timeout(REDIS_TIMEOUT, ping(node)).await {
            Ok(Ok(probe)) => {
                if let Some(refusal) = probe.info.as_deref().and_then(eviction_refusal) {
                    return Err(format!("{}:{}: {refusal}", node.host, node.port));
                }
                notes.push_str(&probe.note);
            }
            Ok(Err(err)) => {
                return Err(format!(
                    "{}:{}: {err:#}\n  fix: start Redis or correct \"redis\" (lamed configure); \
                     it must also be reachable from AWS Lambda",
                    node.host, node.port
                ))
            }
            Err(_) => {
                return Err(format!(
                "{}:{}: no answer in {REDIS_TIMEOUT:?}\n  fix: check the host, port and firewall \
                     (lamed configure); it must also be reachable from AWS Lambda",
                node.host, node.port
            ))
            }
        }
    }
    Ok(notes)
}

/// What one node answered.
struct Probe {
    /// A note for the ok line.
    note: String,
    /// Its `INFO memory` answer; none for TLS nodes.
    info: Option<String>,
}

/// Connects, logs in when a password is set, sends PING and reads
/// `INFO memory` (raw RESP). TLS nodes are only connected to: speaking TLS
/// needs the Redis client.
async fn ping(node: &RedisNode) -> anyhow::Result<Probe> {
    let stream = TcpStream::connect((node.host.as_str(), node.port))
        .await
        .context("cannot connect")?;
    if node.tls {
        return Ok(Probe {
            note: " (TLS: connection checked, not PING nor eviction policy)".to_owned(),
            info: None,
        });
    }
    let mut stream = BufReader::new(stream);
    if let Some(password) = &node.password {
        let mut args = vec!["AUTH"];
        if let Some(user) = &node.username {
            args.push(user);
        }
        args.push(password);
        let answer = command(&mut stream, &args).await?;
        if !answer.starts_with("+OK") {
            anyhow::bail!("login refused: {}", answer.trim_start_matches('-'));
        }
    }
    let answer = command(&mut stream, &["PING"]).await?;
    if answer.starts_with("+PONG") {
        let info = bulk(&mut stream, &["INFO", "memory"]).await?;
        Ok(Probe {
            note: String::new(),
            info: Some(info),
        })
    } else if answer.starts_with("-NOAUTH") {
        anyhow::bail!("redis wants a password: set redis.password")
    } else {
        anyhow::bail!("unexpected answer to PING: {answer}")
    }
}

/// Sends a command whose answer is a bulk string, and reads that string.
async fn bulk(stream: &mut BufReader<TcpStream>, args: &[&str]) -> anyhow::Result<String> {
    let header = command(stream, args).await?;
    let len: usize = header
        .strip_prefix('$')
        .and_then(|len| len.parse().ok())
        .with_context(|| format!("unexpected answer to {}: {header}", args.join(" ")))?;
    // The string and its trailing CRLF.
    let mut body = vec![0; len + 2];
    stream
        .read_exact(&mut body)
        .await
        .context("cannot read from redis")?;
    body.truncate(len);
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Sends a command and reads the first line of its answer.
async fn command(stream: &mut BufReader<TcpStream>, args: &[&str]) -> anyhow::Result<String> {
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .context("cannot send to redis")?;
    let mut line = String::new();
    stream
        .read_line(&mut line)
        .await
        .context("cannot read from redis")?;
    if line.is_empty() {
        anyhow::bail!("redis closed the connection");
    }
    Ok(line.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::ping_all;
    use lamed_store::redis::testing::RedisServer;
    use lamed_store::redis::RedisSettings;

    /// The Redis check refuses the eviction policies the store refuses,
    /// with the same message, and passes `noeviction`.
    #[tokio::test]
    async fn redis_check_refuses_an_evicting_policy() {
        for (policy, refused) in [("volatile-lru", true), ("noeviction", false)] {
            let server = RedisServer::start_with_policy(policy);
            let nodes = RedisSettings::from_urls(&server.url()).unwrap().nodes;
            let outcome = ping_all(&nodes).await;
            if refused {
                let err = outcome.unwrap_err();
                assert!(err.contains(&format!("127.0.0.1:{}", server.port)), "{err}");
                assert!(err.contains("maxmemory-policy is volatile-lru"), "{err}");
                assert!(
                    err.contains("CONFIG SET maxmemory-policy noeviction"),
                    "{err}"
                );
            } else {
                outcome.unwrap();
            }
        }
    }
}
