//! `lamed serve`: resolve the configuration, open the store, bind, print
//! the banner, and run until a shutdown signal.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;

use crate::alerts;
use crate::cli::ServeArgs;
use crate::clock::Clock;
use crate::config::Config;
use crate::model::DEFAULT_NAMESPACE;
use crate::server::{self, AppState, ConnectionLimits, InFlight, RouterOptions};
use crate::snippet;
use crate::store;

/// Runs the server until SIGINT or SIGTERM.
///
/// # Errors
///
/// A configuration, store or socket problem, before anything is served;
/// or a failure to close the store cleanly at the end.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args.overrides())?;
    tracing::debug!(?config, "configuration resolved");
    if !config.unknown_keys.is_empty() {
        tracing::warn!(keys = ?config.unknown_keys, "ignoring unknown keys in the config file");
    }
    // A certificate that does not load stops the start before anything
    // is opened or bound.
    let tls = config
        .tls_files()
        .map(server::tls::Tls::load)
        .transpose()
        .context("cannot set up TLS")?;
    let (api_key, key_source) = config.api_key_or_generate()?;
    let store = store::open(&config.store_options())
        .await
        .with_context(|| match (&config.redis, &config.dynamodb_table) {
            (Some(redis), _) => format!("cannot open the redis store at {}", redis.redacted()),
            (None, Some(table)) => format!("cannot open the dynamodb store in table {table}"),
            (None, None) => "cannot open the embedded store".to_owned(),
        })?;
    let alerting = server::alerting::alert_options(&config)?;
    let listener = server::connections::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;

    // Listening before the banner: whoever reads it may signal at once.
    let shutdown = server::shutdown_signal().context("cannot listen for shutdown signals")?;
    let banner = snippet::banner(
        &config.base_url(bound),
        DEFAULT_NAMESPACE,
        &api_key,
        &key_source,
        (config.redis.is_none() && config.dynamodb_table.is_none()).then_some(config.fsync),
    );
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(banner.as_bytes())
        .context("cannot write to stdout")?;
    stdout.flush().context("cannot write to stdout")?;
    drop(stdout);
    match (&config.redis, &config.dynamodb_table) {
        (Some(redis), _) => {
            tracing::info!(address = %bound, tls = tls.is_some(), redis = %redis.redacted(), "serving")
        }
        (None, Some(table)) => {
            tracing::info!(address = %bound, tls = tls.is_some(), dynamodb_table = %table, "serving")
        }
        (None, None) => {
            tracing::info!(address = %bound, tls = tls.is_some(), data_dir = %config.data_dir.display(), fsync = %config.fsync, "serving")
        }
    }

    let in_flight = InFlight::new(config.max_in_flight_requests);
    let options = RouterOptions {
        extra_routes: config
            .extra_wiring
            .iter()
            .map(|w| Ok((w.api_gateway.path_part.clone(), w.handler()?)))
            .collect::<Result<_, crate::config::ConfigError>>()?,
        bench_routes: args.bench_routes,
        request_timeout: std::time::Duration::from_millis(config.request_timeout_ms),
        in_flight: in_flight.clone(),
        ..RouterOptions::default()
    };
    let limits = ConnectionLimits::for_this_process(
        config.max_connections,
        config.header_timeout_ms,
        in_flight,
    );
    let state = AppState::from_config(store, &api_key, &config);
    let alerts = alerting.map(|mut alerting| {
        if alerting.public_url.is_empty() {
            alerting.public_url = config.base_url(bound);
        }
        let state = state.clone();
        tokio::spawn(alerts::run(
            state.store.clone(),
            alerting,
            Duration::from_secs(config.alert_check_seconds),
            Clock::System,
            move |summary| {
                state.metrics.webhooks(
                    summary.delivered,
                    summary.retried,
                    summary.failed,
                    summary.disabled.len() as u64,
                    summary.disabled_endpoints,
                )
            },
        ))
    });
    match tls {
        None => server::run(listener, state, &options, &limits, shutdown).await?,
        Some(tls) => server::run_tls(listener, tls, state, &options, &limits, shutdown).await?,
    }
    if let Some(alerts) = alerts {
        // Its state is in the store: an attempt cut here is sent again.
        alerts.abort();
    }
    tracing::info!("stopped cleanly");
    Ok(())
}
