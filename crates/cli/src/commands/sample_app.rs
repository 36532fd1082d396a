//! `rampart sample-app`: a small service with fault knobs.

use crate::exit::{CliError, CliResult, USAGE};
use crate::shutdown::shutdown_signal;

pub async fn run(args: rampart_sample_app::SampleAppArgs) -> CliResult {
    rampart_sample_app::run(args, shutdown_signal())
        .await
        .map_err(|e| match e {
            rampart_sample_app::SampleAppError::InvalidArgument { .. } => CliError {
                code: USAGE,
                error: e.into(),
            },
            other => other.into(),
        })
}
