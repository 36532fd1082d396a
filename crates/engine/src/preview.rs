//! Blue-green's preview listener: a router service of its own (named
//! `<service>.preview`, a name no configured service can have) that serves the
//! service's stable version until a blue-green rollout points it at the new version,
//! so testers and the pre-promotion analysis reach the new version before the switch.

use rampart_config::{ServiceConfig, StrategyKind};
use rampart_router::ServiceRoute;

use crate::service::{ServingVersion, upstream_set};

/// The router service behind `service`'s preview listener.
pub(crate) fn route_name(service: &str) -> String {
    format!("{service}.preview")
}

/// The preview's route for a blue-green service, serving `stable` to begin with.
pub(crate) fn route(service: &ServiceConfig, stable: &ServingVersion) -> Option<ServiceRoute> {
    if service.strategy.kind != StrategyKind::BlueGreen {
        return None;
    }
    let listen = service.strategy.preview_listen?;
    Some(ServiceRoute {
        name: route_name(&service.name),
        listen,
        settings: service.router.clone(),
        stable: upstream_set(stable),
        canary: None,
        canary_weight: 0.0,
        // Testers reach the new version as users will: over TLS when the service is.
        tls: service.tls.clone(),
    })
}
