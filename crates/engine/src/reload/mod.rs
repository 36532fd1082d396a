//! Config reload without a restart: what changed ([`plan`], pure), whether it can
//! be applied while rampart runs, and what was applied. Start-up applies the plan
//! from a config without services through the same code (`engine/apply.rs`), so a
//! service added by a reload starts exactly as one configured at start.

mod plan;
#[cfg(test)]
mod rollout_in_flight;

use serde::Serialize;

pub use plan::{FieldChange, Plan, ServiceChange, diff, refusals, short};

/// What a reload did, for the API, the CLI and the audit log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<ChangedService>,
    /// False when the file was valid and said what rampart already runs.
    pub changes: bool,
}

/// One service's applied changes, with what each meant at run time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangedService {
    pub name: String,
    pub fields: Vec<FieldChange>,
    /// How the changes took effect (resized, settings in force, next rollout, …).
    pub notes: Vec<String>,
}

impl ReloadSummary {
    /// One line per change, as `rampart reload` prints it and SIGHUP logs it.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for name in &self.added {
            lines.push(format!("added service `{name}`"));
        }
        for name in &self.removed {
            lines.push(format!("removed service `{name}`"));
        }
        for service in &self.changed {
            for field in &service.fields {
                lines.push(format!(
                    "service `{}`: {} {} → {}",
                    service.name,
                    field.field,
                    short(&field.from),
                    short(&field.to)
                ));
            }
            for note in &service.notes {
                lines.push(format!("service `{}`: {note}", service.name));
            }
        }
        lines
    }
}

/// Why a reload changed nothing.
#[derive(Debug)]
pub enum ReloadError {
    /// The plan asks for what cannot change at run time; every reason is listed.
    Refused(Vec<String>),
    /// Applying failed (a port taken, an instance that would not start); what had
    /// started for the reload was stopped again.
    Failed(crate::EngineError),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Refused(reasons) => {
                write!(f, "the reload was refused; nothing was changed:")?;
                for reason in reasons {
                    write!(f, "\n  - {reason}")?;
                }
                Ok(())
            }
            ReloadError::Failed(e) => write!(f, "the reload failed; nothing was changed: {e}"),
        }
    }
}

impl std::error::Error for ReloadError {}
