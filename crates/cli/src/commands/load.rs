//! `rampart load URL`: steady traffic to a service, with what each version answered.
//! A rollout is judged on live traffic; this is the traffic when there is none yet.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, anyhow};

use crate::cli::LoadArgs;
use crate::exit::{CliError, CliResult};
use crate::loadgen::{ByVersion, LoadGenerator, LoadPlan, NO_VERSION};
use crate::output::print_table;
use crate::shutdown::shutdown_signal;

/// Away from a terminal a line per second would flood a log; one per this many.
const LOG_EVERY_SECS: u32 = 5;

pub async fn run(args: LoadArgs) -> CliResult {
    let url = reqwest::Url::parse(&args.url)
        .map_err(|e| CliError::usage(anyhow!("`{}` is not a URL: {e}", args.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CliError::usage(anyhow!(
            "`{}` is not an http or https URL; give one such as http://127.0.0.1:8080/",
            args.url
        )));
    }
    let plan = LoadPlan {
        url: url.to_string(),
        rate: args.rate,
        version_header: args.version_header.clone(),
        timeout: args.timeout.get(),
    };
    let http = crate::client::http_client(args.ca.as_deref())?;
    let load = LoadGenerator::start_with(plan, http).context("starting the load generator")?;
    let live = std::io::stdout().is_terminal();
    let until = match args.duration {
        Some(d) => format!("for {d}"),
        None => "until Ctrl-C".into(),
    };
    println!(
        "sending {} requests/s to {url} {until}; versions from the `{}` response header",
        args.rate, args.version_header
    );

    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d.get());
    let finished = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(finished);
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut pending = ByVersion::new();
    let mut pending_secs = 0u32;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut finished => break,
            _ = &mut stop => break,
        }
        for (version, numbers) in load.take_interval() {
            pending.entry(version).or_default().merge(&numbers);
        }
        pending_secs += 1;
        if live {
            print!(
                "\r\x1b[2K{}",
                live_line(load.elapsed(), &pending, pending_secs)
            );
            let _ = std::io::stdout().flush();
        } else if pending_secs >= LOG_EVERY_SECS {
            println!("{}", live_line(load.elapsed(), &pending, pending_secs));
        } else {
            continue;
        }
        pending.clear();
        pending_secs = 0;
    }
    let elapsed = load.elapsed();
    let (totals, versions) = load.stop().await;
    if live {
        println!();
    }
    println!(
        "sent {} requests in {:.1}s ({:.1}/s): {} ok, {} server errors, {} other statuses, {} without an answer",
        totals.total(),
        elapsed.as_secs_f64(),
        totals.total() as f64 / elapsed.as_secs_f64().max(0.001),
        totals.ok,
        totals.server_errors,
        totals.other_status,
        totals.transport_errors
    );
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|(version, v)| {
            vec![
                version_label(version),
                v.requests.to_string(),
                v.errors.to_string(),
                pct(v.error_pct()),
                ms(v.quantile_ms(0.5)),
                ms(v.quantile_ms(0.95)),
                ms(v.quantile_ms(0.99)),
            ]
        })
        .collect();
    print_table(
        &[
            "VERSION", "REQUESTS", "ERRORS", "ERROR %", "P50", "P95", "P99",
        ],
        &rows,
    );
    Ok(())
}

/// "  12s  100.0 req/s | v1 90.0/s err 0.00% p95 2.1ms | v2 10.0/s err 10.00% p95 2.3ms"
fn live_line(elapsed: Duration, versions: &ByVersion, secs: u32) -> String {
    let secs = f64::from(secs.max(1));
    let total: u64 = versions.values().map(|v| v.requests).sum();
    let mut line = format!(
        "{:>5.0}s  {:.1} req/s",
        elapsed.as_secs_f64(),
        total as f64 / secs
    );
    for (version, v) in versions {
        line.push_str(&format!(
            " | {} {:.1}/s err {} p95 {}",
            version_label(version),
            v.requests as f64 / secs,
            pct(v.error_pct()),
            ms(v.quantile_ms(0.95))
        ));
    }
    line
}

fn version_label(version: &str) -> String {
    if version == NO_VERSION {
        "(no version)".into()
    } else {
        version.to_string()
    }
}

fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.2}%"))
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.1}ms"))
}
