//! Keeps `schema.rs` (what the structure check accepts) in step with `model.rs` (what
//! serde reads): the same keys, the same required ones, compatible types.

use std::collections::BTreeSet;

use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, Visitor};

use crate::check_serde::{CheckKindName, RawCheck, own_keys};
use crate::incidents::{IncidentActionConfig, IncidentRuleConfig};
use crate::model::*;
use crate::schema::{self, Key, TAG, Ty};

const FULL_EXAMPLE: &str = include_str!("../../../examples/full.toml");

/// The field names serde's derive gives a struct, read by asking it to deserialize
/// from a deserializer that only records them.
fn serde_fields<T: DeserializeOwned>() -> BTreeSet<&'static str> {
    struct Recorder<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Recorder<'_> {
        type Error = de::value::Error;
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("recorded"))
        }
        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Recorder(&mut fields));
    fields.iter().copied().collect()
}

fn names(keys: &[Key]) -> BTreeSet<&'static str> {
    keys.iter().map(|key| key.name).collect()
}

fn variant_keys(tagged: &schema::Tagged, kind: &str) -> BTreeSet<&'static str> {
    let variant = tagged
        .variants
        .iter()
        .find(|variant| variant.kind == kind)
        .unwrap_or_else(|| panic!("schema has no {kind} variant"));
    names(variant.keys)
}

#[test]
fn schema_tables_have_exactly_the_model_fields() {
    assert_eq!(names(schema::ROOT.keys), serde_fields::<Config>());
    assert_eq!(names(schema::SERVER.keys), serde_fields::<ServerConfig>());
    assert_eq!(names(schema::SERVICE.keys), serde_fields::<ServiceConfig>());
    assert_eq!(
        names(schema::STRATEGY.keys),
        serde_fields::<StrategyConfig>()
    );
    assert_eq!(names(schema::STEP.keys), serde_fields::<StepConfig>());
    assert_eq!(
        names(schema::STEP_MATCH.keys),
        serde_fields::<crate::model::MatchConfig>()
    );
    assert_eq!(
        names(schema::ANALYSIS.keys),
        serde_fields::<AnalysisConfig>()
    );
    assert_eq!(names(schema::ROUTER.keys), serde_fields::<RouterConfig>());
    assert_eq!(
        names(schema::TELEMETRY.keys),
        serde_fields::<TelemetryConfig>()
    );
    assert_eq!(
        names(schema::AUTOSCALE.keys),
        serde_fields::<AutoscaleConfig>()
    );
    assert_eq!(
        names(schema::AUTOSCALE_TARGET.keys),
        serde_fields::<AutoscaleTarget>()
    );
    assert_eq!(
        names(schema::SCALING_RULES.keys),
        serde_fields::<ScalingRulesConfig>()
    );
    assert_eq!(
        names(schema::SCALING_POLICY.keys),
        serde_fields::<ScalingPolicyConfig>()
    );
    assert_eq!(
        names(schema::INCIDENT_RULE.keys),
        serde_fields::<IncidentRuleConfig>()
    );
    assert_eq!(
        names(schema::INCIDENT_ACTION.keys),
        serde_fields::<IncidentActionConfig>()
    );
    assert_eq!(
        variant_keys(&schema::BACKEND, "process"),
        serde_fields::<ProcessBackendConfig>()
    );
    assert_eq!(
        variant_keys(&schema::BACKEND, "static"),
        serde_fields::<StaticBackendConfig>()
    );
}

#[test]
fn schema_metric_analysis_has_exactly_the_model_keys() {
    let mut provider = variant_keys(&schema::METRIC_PROVIDER, "prometheus");
    provider.extend(names(schema::METRIC_PROVIDER.common));
    assert_eq!(
        provider,
        serde_fields::<crate::metric_analysis::PrometheusProviderConfig>()
    );
    assert_eq!(schema::METRIC_PROVIDER.kinds().len(), 1);
    assert_eq!(
        names(schema::ANALYSIS_METRIC.keys),
        serde_fields::<crate::metric_analysis::AnalysisMetricConfig>()
    );
}

#[test]
fn schema_notifiers_have_exactly_the_model_keys_per_kind() {
    let common = names(schema::NOTIFIER.common);
    let with_common = |kind: &str| {
        let mut keys = variant_keys(&schema::NOTIFIER, kind);
        keys.extend(common.iter().copied());
        keys
    };
    assert_eq!(with_common("slack"), serde_fields::<SlackNotifierConfig>());
    assert_eq!(
        with_common("pagerduty"),
        serde_fields::<PagerDutyNotifierConfig>()
    );
    assert_eq!(
        with_common("webhook"),
        serde_fields::<WebhookNotifierConfig>()
    );
    assert_eq!(schema::NOTIFIER.kinds().len(), 3);
    assert_eq!(
        names(schema::ESCALATION.keys),
        serde_fields::<EscalationConfig>()
    );
    assert_eq!(
        names(schema::ESCALATION_STEP.keys),
        serde_fields::<EscalationStepConfig>()
    );
}

#[test]
fn schema_checks_have_exactly_the_model_keys_per_kind() {
    let mut all = names(schema::CHECK.common);
    all.insert(TAG);
    for kind in CheckKindName::ALL {
        let own: BTreeSet<&str> = own_keys(kind).iter().copied().collect();
        assert_eq!(variant_keys(&schema::CHECK, kind.as_str()), own, "{kind:?}");
        all.extend(own);
    }
    assert_eq!(all, serde_fields::<RawCheck>());
    assert_eq!(
        schema::CHECK.kinds().len(),
        CheckKindName::ALL.len(),
        "every schema check kind is a model check kind"
    );
}

#[test]
fn schema_hooks_have_exactly_the_model_keys_per_kind() {
    use crate::hooks::{ConfirmHook, LoadTestHook, WebhookHook};
    for variant in schema::HOOK.variants {
        let mut keys = names(schema::HOOK.common);
        keys.extend(names(variant.keys));
        let model = match variant.kind {
            "confirm_traffic_increase" | "confirm_promotion" => serde_fields::<ConfirmHook>(),
            "load_test" => serde_fields::<LoadTestHook>(),
            _ => serde_fields::<WebhookHook>(),
        };
        assert_eq!(keys, model, "{}", variant.kind);
    }
    let kinds: BTreeSet<&str> = crate::hooks::HookKind::ALL
        .iter()
        .map(|kind| kind.name())
        .collect();
    let schema_kinds: BTreeSet<&str> = schema::HOOK.variants.iter().map(|v| v.kind).collect();
    assert_eq!(schema_kinds, kinds);
}

/// Every key the schema knows, as (table path in the example, key, present there).
fn keys_in_example(
    keys: &[&'static Key],
    at: &[String],
    table: &toml::Table,
    out: &mut Vec<(Vec<String>, &'static Key)>,
) {
    for key in keys {
        let Some(value) = table.get(key.name) else {
            continue;
        };
        out.push((at.to_vec(), key));
        let mut child_at = at.to_vec();
        child_at.push(key.name.to_string());
        descend(&key.ty, &child_at, value, out);
    }
}

fn descend(
    ty: &'static Ty,
    at: &[String],
    value: &toml::Value,
    out: &mut Vec<(Vec<String>, &'static Key)>,
) {
    match (ty, value) {
        (Ty::Table(table), toml::Value::Table(doc)) => {
            keys_in_example(&table.keys.iter().collect::<Vec<_>>(), at, doc, out)
        }
        (Ty::Tagged(tagged), toml::Value::Table(doc)) => {
            let kind = doc
                .get(TAG)
                .and_then(toml::Value::as_str)
                .unwrap_or_default();
            let variant = tagged
                .variants
                .iter()
                .find(|variant| variant.kind == kind)
                .unwrap_or_else(|| panic!("unknown kind {kind} in the example"));
            let keys: Vec<&Key> = tagged.common.iter().chain(variant.keys).collect();
            keys_in_example(&keys, at, doc, out);
        }
        (Ty::Tables(item), toml::Value::Array(items)) => {
            for (index, element) in items.iter().enumerate() {
                let mut element_at = at.to_vec();
                element_at.push(index.to_string());
                descend(item, &element_at, element, out);
            }
        }
        _ => {}
    }
}

fn all_schema_keys(ty: &'static Ty, out: &mut Vec<&'static Key>) {
    let add = |keys: &'static [Key], out: &mut Vec<&'static Key>| {
        for key in keys {
            out.push(key);
            all_schema_keys(&key.ty, out);
        }
    };
    match ty {
        Ty::Table(table) => add(table.keys, out),
        Ty::Tagged(tagged) => {
            add(tagged.common, out);
            for variant in tagged.variants {
                add(variant.keys, out);
            }
        }
        Ty::Tables(item) | Ty::List(item) => all_schema_keys(item, out),
        _ => {}
    }
}

static ROOT_TY: Ty = Ty::Table(&schema::ROOT);

fn example_keys() -> (toml::Table, Vec<(Vec<String>, &'static Key)>) {
    let doc: toml::Table = toml::from_str(FULL_EXAMPLE).expect("full example is TOML");
    let mut found = Vec::new();
    descend(&ROOT_TY, &[], &toml::Value::Table(doc.clone()), &mut found);
    (doc, found)
}

#[test]
fn the_full_example_sets_every_key_of_the_schema() {
    let (_, found) = example_keys();
    let mut all = Vec::new();
    all_schema_keys(&ROOT_TY, &mut all);
    for key in all {
        assert!(
            found.iter().any(|(_, seen)| std::ptr::eq(*seen, key)),
            "examples/full.toml does not show `{}`",
            key.name
        );
    }
}

#[test]
fn schema_and_model_agree_on_which_keys_are_required() {
    let (doc, found) = example_keys();
    for (at, key) in found {
        let mut trimmed = toml::Value::Table(doc.clone());
        let mut cursor = &mut trimmed;
        for segment in &at {
            let child = match segment.parse::<usize>() {
                Ok(index) => cursor.get_mut(index),
                Err(_) => cursor.get_mut(segment.as_str()),
            };
            cursor = child.unwrap_or_else(|| panic!("nothing at {at:?}"));
        }
        cursor
            .as_table_mut()
            .unwrap_or_else(|| panic!("no table at {at:?}"))
            .remove(key.name);
        let read = Config::deserialize(trimmed);
        assert_eq!(
            read.is_err(),
            key.required,
            "removing `{}` at {at:?}: schema says required = {}, model says {:?}",
            key.name,
            key.required,
            read.err()
        );
    }
}

#[test]
fn the_model_written_back_as_toml_is_accepted_and_reads_the_same() {
    let config = crate::parse(FULL_EXAMPLE, "full.toml").expect("full example loads");
    let written = toml::to_string(&config).expect("config serializes");
    let reread = crate::parse(&written, "written.toml")
        .unwrap_or_else(|error| panic!("written config is rejected:\n{error}\n\n{written}"));
    assert_eq!(reread, config);
}
