//! The one way the engine changes a service's routing table, behind a trait so that
//! tests can put a router that refuses tables in its place.

use std::net::SocketAddr;

use rampart_router::{RouteTable, ServiceHandle};

use crate::error::EngineError;

/// Applies whole routing tables. The engine reads the table, changes what it means to
/// and hands the result back: one primitive, so a refused change is refused whole.
pub trait RouteWriter: Send + Sync {
    /// The table the router uses now.
    fn table(&self) -> RouteTable;

    /// Replaces the table at once. Returns the instances that left it (now draining).
    fn apply(&self, table: RouteTable) -> Result<Vec<SocketAddr>, EngineError>;
}

impl RouteWriter for ServiceHandle {
    fn table(&self) -> RouteTable {
        ServiceHandle::table(self)
    }

    fn apply(&self, table: RouteTable) -> Result<Vec<SocketAddr>, EngineError> {
        Ok(self.swap(table)?)
    }
}
