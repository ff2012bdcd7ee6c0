//! The `lamed` binary: parse the command line, start logging, dispatch.
//! Started by an AWS Lambda runtime, it serves API Gateway events instead.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use lamed::cli::{Cli, Command, LogFormat};
use lamed::commands;

/// A request's buffers are allocated on one thread and freed on another
/// (the async workers and the store's writer); glibc's malloc took 18% of
/// the server's CPU on that, mimalloc much less (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // On Lambda there is no command line: the runtime API decides.
    let lambda = lamed::lambda::is_lambda_runtime();
    let cli = (!lambda).then(Cli::parse);
    init_tracing(cli.as_ref().map_or(LogFormat::Human, |cli| cli.log_format));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("lamed: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let Some(cli) = cli else {
            return lamed::lambda::run().await;
        };
        match cli.command {
            Command::Serve(args) => lamed::serve::serve(args).await,
            Command::Report(args) => commands::report::run(args).await,
            Command::Experiments(args) => commands::experiments::run(args).await,
            Command::Dashboard(args) => commands::dashboard::run(args),
            #[cfg(feature = "redis")]
            Command::Import(args) => lamed::import::import(args).await,
            #[cfg(not(feature = "redis"))]
            Command::Import(_) => Err(anyhow::anyhow!(
                "import reads Redis, and this lamed was built without the redis feature"
            )),
            Command::Backup(args) => commands::backup::backup(args),
            Command::Restore(args) => commands::backup::restore(args),
            Command::Configure(args) => commands::configure::run(args),
            Command::Preflight(args) => commands::aws::preflight(args).await,
            Command::Deploy(args) => commands::aws::deploy(args).await,
            Command::Destroy(args) => commands::aws::destroy(args).await,
            Command::Man(args) => commands::man::run(args),
            Command::Openapi => commands::openapi::run(),
            Command::Webhooks(action) => commands::webhooks::run(action).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `lamed report | head`: the reader has seen enough.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("lamed: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout is for data such as the banner); `RUST_LOG`
/// overrides the default `info` level.
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Whether `err` comes from writing to a reader that has gone.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
