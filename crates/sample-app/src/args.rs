use std::net::SocketAddr;

use crate::SampleAppError;

/// Command-line arguments of the sample app (`rampart sample-app ...`). The fault
/// knobs also read `SAMPLE_APP_*` environment variables, so a deploy can set them per
/// release without changing the command template.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SampleAppArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Version label this instance reports.
    // The field is not called `version` so that it never collides with clap's
    // automatic `--version` flag handling in the embedding command.
    #[arg(long = "version", value_name = "V", default_value = "v1")]
    pub app_version: String,
    /// Fraction of requests (0.0..=1.0) answered with 500.
    #[arg(long, env = "SAMPLE_APP_ERROR_RATE", value_name = "F", default_value_t = 0.0, value_parser = parse_fraction)]
    pub error_rate: f64,
    /// Added to every request except /healthz, in milliseconds.
    #[arg(
        long,
        env = "SAMPLE_APP_LATENCY_MS",
        value_name = "N",
        default_value_t = 0
    )]
    pub latency_ms: u64,
    /// Up to this many extra milliseconds, uniformly random per request.
    #[arg(
        long,
        env = "SAMPLE_APP_LATENCY_JITTER_MS",
        value_name = "N",
        default_value_t = 0
    )]
    pub latency_jitter_ms: u64,
    /// Percent of requests (0..=100) whose connection is closed without any answer,
    /// as a crashing or overloaded server does; /healthz and /stats are spared.
    #[arg(long, env = "SAMPLE_APP_RESET_PERCENT", value_name = "P", default_value_t = 0.0, value_parser = parse_percent)]
    pub reset_percent: f64,
    /// After N requests, every request (except /healthz) answers 500.
    #[arg(long, env = "SAMPLE_APP_FAIL_AFTER", value_name = "N")]
    pub fail_after: Option<u64>,
    /// After N requests, the process exits with code 3.
    #[arg(long, env = "SAMPLE_APP_CRASH_AFTER", value_name = "N")]
    pub crash_after: Option<u64>,
    /// Seed for the error-injection random numbers; random per process when absent.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

impl Default for SampleAppArgs {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            app_version: "v1".into(),
            error_rate: 0.0,
            latency_ms: 0,
            latency_jitter_ms: 0,
            reset_percent: 0.0,
            fail_after: None,
            crash_after: None,
            seed: None,
        }
    }
}

impl SampleAppArgs {
    /// Checks what clap cannot, and what a caller building the struct by hand may get
    /// wrong.
    pub fn validate(&self) -> Result<(), SampleAppError> {
        check_fraction(self.error_rate).map_err(|reason| SampleAppError::InvalidArgument {
            flag: "--error-rate",
            reason,
        })?;
        check_percent(self.reset_percent).map_err(|reason| SampleAppError::InvalidArgument {
            flag: "--reset-percent",
            reason,
        })?;
        if self.app_version.trim().is_empty() {
            return Err(SampleAppError::InvalidArgument {
                flag: "--version",
                reason: "the version label must not be empty, such as \"v2\"".into(),
            });
        }
        if self.crash_after == Some(0) {
            return Err(SampleAppError::InvalidArgument {
                flag: "--crash-after",
                reason: "must be at least 1 (the number of requests answered before exiting)"
                    .into(),
            });
        }
        Ok(())
    }
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("\"{text}\" is not a number; write a fraction such as 0.05 for 5%"))?;
    check_fraction(value)?;
    Ok(value)
}

fn check_fraction(value: f64) -> Result<(), String> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{value} is outside 0.0..=1.0; it is a fraction of requests, such as 0.05 for 5%"
        ))
    }
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let value: f64 =
        text.trim().trim_end_matches('%').parse().map_err(|_| {
            format!("\"{text}\" is not a number; write a percentage such as 5 for 5%")
        })?;
    check_percent(value)?;
    Ok(value)
}

fn check_percent(value: f64) -> Result<(), String> {
    if value.is_finite() && (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{value} is outside 0..=100; it is a percentage of requests, such as 5 for 5%"
        ))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: SampleAppArgs,
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let cli = Cli::try_parse_from(["sample-app"]).unwrap();
        assert_eq!(cli.args, SampleAppArgs::default());
    }

    #[test]
    fn parses_every_flag() {
        let cli = Cli::try_parse_from([
            "sample-app",
            "--listen",
            "127.0.0.1:9000",
            "--version",
            "v2",
            "--error-rate",
            "0.25",
            "--latency-ms",
            "5",
            "--latency-jitter-ms",
            "3",
            "--reset-percent",
            "12.5",
            "--fail-after",
            "10",
            "--crash-after",
            "20",
            "--seed",
            "7",
        ])
        .unwrap();
        assert_eq!(cli.args.app_version, "v2");
        assert_eq!(cli.args.error_rate, 0.25);
        assert_eq!(cli.args.reset_percent, 12.5);
        assert_eq!(cli.args.fail_after, Some(10));
        assert_eq!(cli.args.crash_after, Some(20));
        assert!(cli.args.validate().is_ok());
    }

    #[test]
    fn rejects_an_error_rate_given_as_a_percentage() {
        let err = Cli::try_parse_from(["sample-app", "--error-rate", "5"]).unwrap_err();
        assert!(err.to_string().contains("outside 0.0..=1.0"), "{err}");
    }

    #[test]
    fn validate_catches_hand_built_bad_values() {
        let args = SampleAppArgs {
            error_rate: -0.1,
            ..SampleAppArgs::default()
        };
        let err = args.validate().unwrap_err();
        assert!(err.to_string().contains("--error-rate"), "{err}");
        assert_eq!(err.exit_code(), 2);

        let args = SampleAppArgs {
            error_rate: f64::NAN,
            ..SampleAppArgs::default()
        };
        assert!(args.validate().is_err());

        let args = SampleAppArgs {
            reset_percent: 101.0,
            ..SampleAppArgs::default()
        };
        assert!(
            args.validate()
                .unwrap_err()
                .to_string()
                .contains("--reset-percent")
        );

        let args = SampleAppArgs {
            crash_after: Some(0),
            ..SampleAppArgs::default()
        };
        assert!(
            args.validate()
                .unwrap_err()
                .to_string()
                .contains("--crash-after")
        );
    }
}
