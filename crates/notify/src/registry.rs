//! Channels chosen by the `kind` in the config: each kind's file registers a
//! builder under its name, and nothing else matches on kinds.

use std::collections::BTreeMap;

use rampart_config::NotifierConfig;

use crate::channel::{Channel, ChannelContext};

/// Builds a channel from its `[[notifier]]`; `None` if the config is of another kind.
pub type ChannelBuilder = fn(&NotifierConfig, &ChannelContext) -> Option<Box<dyn Channel>>;

pub struct ChannelRegistry {
    builders: BTreeMap<&'static str, ChannelBuilder>,
}

impl ChannelRegistry {
    /// Every kind rampart ships.
    pub fn builtin() -> ChannelRegistry {
        let mut registry = ChannelRegistry {
            builders: BTreeMap::new(),
        };
        crate::slack::register(&mut registry);
        crate::pagerduty::register(&mut registry);
        crate::webhook::register(&mut registry);
        registry
    }

    pub fn register(&mut self, kind: &'static str, builder: ChannelBuilder) {
        self.builders.insert(kind, builder);
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.builders.keys().copied()
    }

    /// The channel for `config`, if its kind is registered.
    pub fn build(
        &self,
        config: &NotifierConfig,
        context: &ChannelContext,
    ) -> Option<Box<dyn Channel>> {
        let builder = self.builders.get(config.kind_name())?;
        builder(config, context)
    }
}
