//! `rampart check-config`: validate without starting anything.

use crate::cli::ConfigArg;
use crate::exit::{CliError, CliResult};

pub fn run(args: ConfigArg) -> CliResult {
    let config = rampart_config::load(&args.config).map_err(CliError::usage)?;
    println!("{} is valid", args.config.display());
    println!("{}", config.summary());
    Ok(())
}
