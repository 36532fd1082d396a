//! Resolving whether a command works offline on a data dir or through the API.

use std::path::PathBuf;

use rampart_store::Store;

use crate::cli::Target;
use crate::client::ApiClient;
use crate::exit::{CliError, CliResult};

pub enum Resolved {
    Offline(Store),
    Api(ApiClient),
}

/// The data dir a config names (relative to the config file), for offline commands.
pub fn data_dir_of_config(path: &std::path::Path) -> CliResult<PathBuf> {
    let config = rampart_config::load(path).map_err(CliError::usage)?;
    Ok(config.server.data_dir)
}

pub fn resolve(target: &Target) -> CliResult<Resolved> {
    let data_dir = match (&target.config, &target.data_dir) {
        (Some(config), _) => Some(data_dir_of_config(config)?),
        (None, Some(dir)) => Some(dir.clone()),
        (None, None) => None,
    };
    match data_dir {
        Some(dir) => {
            if !dir.join("rampart.db").exists() {
                return Err(CliError::usage(anyhow::anyhow!(
                    "no rampart store in {}: expected {}; start `rampart serve` once or check --data-dir",
                    dir.display(),
                    dir.join("rampart.db").display()
                )));
            }
            Ok(Resolved::Offline(Store::open(&dir)?))
        }
        None => Ok(Resolved::Api(ApiClient::new(&target.api, None)?)),
    }
}
