//! Checks the parsed TOML against the schema: unknown keys (with a suggestion),
//! unknown kinds, wrong types, malformed durations and addresses, missing required
//! keys. Everything found is reported at once, each at its exact place.

use std::net::SocketAddr;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::Finding;
use crate::duration;
use crate::schema::{Key, ROOT, TAG, Table, Tagged, Ty};
use crate::suggest::closest;

/// Every structural problem in `root`; empty means serde can read it into the model.
pub(crate) fn check(source: &str, root: &Spanned<DeTable<'_>>) -> Vec<Finding> {
    let mut walker = Walker {
        source,
        path: Vec::new(),
        findings: Vec::new(),
    };
    walker.table(root.get_ref(), root.span(), &ROOT);
    walker.findings
}

struct Walker<'s> {
    source: &'s str,
    /// Keys from the root to the table being walked, for `[[a.b]]` hints.
    path: Vec<String>,
    findings: Vec<Finding>,
}

/// Where a value sits, for messages: "`listen` in [server]" (`table` carries its
/// preposition).
struct Place<'a> {
    key: &'a str,
    table: &'a str,
    example: &'a str,
    in_list: bool,
}

impl Place<'_> {
    fn describe(&self) -> String {
        if self.in_list {
            format!("an item of `{}` {}", self.key, self.table)
        } else {
            format!("`{}` {}", self.key, self.table)
        }
    }
}

impl Walker<'_> {
    fn table(&mut self, table: &DeTable<'_>, span: Range<usize>, schema: &Table) {
        let keys: Vec<&Key> = schema.keys.iter().collect();
        self.keys(table, span, schema.name, &keys, false, |_| None);
    }

    /// Checks each entry of `table` against `keys` (plus the `kind` tag when
    /// `tagged`); `foreign` explains a key that is unknown here but valid elsewhere
    /// (another kind's key).
    fn keys(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        table_name: &str,
        keys: &[&Key],
        tagged: bool,
        foreign: impl Fn(&str) -> Option<String>,
    ) {
        let names: Vec<&str> = tagged
            .then_some(TAG)
            .into_iter()
            .chain(keys.iter().map(|key| key.name))
            .collect();
        for (name, value) in table.iter() {
            let name_text: &str = name.get_ref();
            if let Some(key) = keys.iter().find(|key| key.name == name_text) {
                let place = Place {
                    key: key.name,
                    table: table_name,
                    example: key.example,
                    in_list: false,
                };
                self.path.push(key.name.to_string());
                self.value(value, &key.ty, &place);
                self.path.pop();
            } else if !(tagged && name_text == TAG) {
                self.unknown_key(name, table_name, &names, &foreign);
            }
        }
        for key in keys.iter().filter(|key| key.required) {
            if !table.contains_key(key.name) {
                self.findings.push(
                    Finding::new(
                        span.clone(),
                        format!("missing key `{}` {table_name}", key.name),
                        format!("this table has no `{}`", key.name),
                    )
                    .help(format!("add `{} = {}`", key.name, key.example)),
                );
            }
        }
    }

    fn unknown_key(
        &mut self,
        name: &Spanned<std::borrow::Cow<'_, str>>,
        table_name: &str,
        allowed: &[&str],
        foreign: &impl Fn(&str) -> Option<String>,
    ) {
        let typed: &str = name.get_ref();
        let listing = if allowed.is_empty() {
            "this table has no keys of its own".to_string()
        } else {
            format!("allowed keys: {}", allowed.join(", "))
        };
        let help = match (foreign(typed), closest(typed, allowed)) {
            (Some(elsewhere), _) => format!("{elsewhere}; {listing}"),
            (None, Some(near)) => format!("did you mean `{near}`? {listing}"),
            (None, None) => listing,
        };
        self.findings.push(
            Finding::new(
                name.span(),
                format!("unknown key `{typed}` {table_name}"),
                "unknown key",
            )
            .help(help),
        );
    }

    fn value(&mut self, value: &Spanned<DeValue<'_>>, ty: &Ty, place: &Place<'_>) {
        let span = value.span();
        match (ty, value.get_ref()) {
            (Ty::String, DeValue::String(_)) | (Ty::Bool, DeValue::Boolean(_)) => {}
            (Ty::Number, DeValue::Integer(_) | DeValue::Float(_)) => {}
            (Ty::Integer { min, max }, DeValue::Integer(integer)) => {
                let parsed = i64::from_str_radix(integer.as_str(), integer.radix()).ok();
                let label = match parsed {
                    Some(n) if n < *min && *min == 0 => "must not be negative".to_string(),
                    Some(n) if n < *min => format!("must be at least {min}"),
                    Some(n) if n <= *max => return,
                    _ => format!("must be at most {max}"),
                };
                self.findings.push(Finding::new(
                    span,
                    format!("out-of-range value for {}", place.describe()),
                    label,
                ));
            }
            (Ty::Duration, DeValue::String(text)) => {
                if let Err(error) = duration::parse(text) {
                    self.findings.push(
                        Finding::new(
                            span,
                            format!("invalid duration for {}", place.describe()),
                            error.reason(),
                        )
                        .help(error.hint()),
                    );
                }
            }
            (Ty::SocketAddr, DeValue::String(text)) => {
                if text.parse::<SocketAddr>().is_err() {
                    self.findings.push(
                        Finding::new(
                            span,
                            format!("invalid address for {}", place.describe()),
                            "expected an IP address and a port",
                        )
                        .help(address_hint(text)),
                    );
                }
            }
            (Ty::OneOf(allowed), DeValue::String(text)) => {
                if !allowed.contains(&text.as_ref()) {
                    let listing = allowed.join(", ");
                    self.findings.push(
                        Finding::new(
                            span,
                            format!("invalid value `{text}` for {}", place.describe()),
                            format!("expected one of {listing}"),
                        )
                        .maybe_help(
                            closest(text, allowed).map(|near| format!("did you mean `{near}`?")),
                        ),
                    );
                }
            }
            (Ty::List(item), DeValue::Array(items)) => {
                let item_place = Place {
                    in_list: true,
                    ..*place
                };
                for element in items.iter() {
                    self.value(element, item, &item_place);
                }
            }
            (Ty::Tables(item), DeValue::Array(items)) => {
                let item_place = Place {
                    in_list: true,
                    ..*place
                };
                for element in items.iter() {
                    self.value(element, item, &item_place);
                }
            }
            (Ty::Table(schema), DeValue::Table(table)) => self.table(table, span, schema),
            (Ty::Tagged(schema), DeValue::Table(table)) => self.tagged(table, span, schema),
            (Ty::StringMap, DeValue::Table(table)) => {
                for (name, entry) in table.iter() {
                    if !matches!(entry.get_ref(), DeValue::String(_)) {
                        let key = format!("{}.{}", place.key, name.get_ref());
                        let entry_place = Place {
                            key: &key,
                            table: place.table,
                            example: "\"value\"",
                            in_list: false,
                        };
                        self.wrong_type(entry, &Ty::String, &entry_place);
                    }
                }
            }
            _ => self.wrong_type(value, ty, place),
        }
    }

    fn tagged(&mut self, table: &DeTable<'_>, span: Range<usize>, schema: &Tagged) {
        let kinds = schema.kinds();
        let listing = kinds.join(", ");
        let Some(tag) = table.get(TAG) else {
            self.findings.push(
                Finding::new(
                    span.clone(),
                    format!("missing key `{TAG}` {}", schema.name),
                    format!("this table has no `{TAG}`"),
                )
                .help(format!(
                    "add `{TAG} = \"{}\"`; {}s: {listing}",
                    kinds.first().copied().unwrap_or_default(),
                    schema.what
                )),
            );
            return;
        };
        let DeValue::String(kind) = tag.get_ref() else {
            let first = kinds.first().copied().unwrap_or_default();
            self.findings.push(
                Finding::new(
                    tag.span(),
                    format!("wrong type for `{TAG}` {}", schema.name),
                    format!(
                        "expected one of the strings {listing}, found {}",
                        found(tag.get_ref())
                    ),
                )
                .help(format!("write it like `{TAG} = \"{first}\"`")),
            );
            return;
        };
        let Some(variant) = schema.variants.iter().find(|v| v.kind == kind.as_ref()) else {
            self.findings.push(
                Finding::new(
                    tag.span(),
                    format!(
                        "unknown {} `{kind}`, expected one of {listing}",
                        schema.what
                    ),
                    format!("unknown {}", schema.what),
                )
                .maybe_help(closest(kind, &kinds).map(|near| format!("did you mean `{near}`?"))),
            );
            return;
        };
        let mut keys: Vec<&Key> = schema.common.iter().collect();
        keys.extend(variant.keys.iter());
        let kind_noun = schema.what.trim_end_matches(" kind");
        let foreign = |typed: &str| {
            if typed == TAG {
                return None;
            }
            schema
                .variants
                .iter()
                .find(|other| other.keys.iter().any(|key| key.name == typed))
                .map(|other| {
                    format!(
                        "`{typed}` belongs to {} {kind_noun}s, not to {} ones",
                        other.kind, variant.kind
                    )
                })
        };
        self.keys(table, span, schema.name, &keys, true, foreign);
    }

    fn wrong_type(&mut self, value: &Spanned<DeValue<'_>>, ty: &Ty, place: &Place<'_>) {
        let found = found(value.get_ref());
        let raw = self.source.get(value.span()).unwrap_or_default();
        let key = place.key;
        // In a list the value stands alone; elsewhere it is shown with its key.
        let assign = |value: &str| {
            if place.in_list {
                value.to_string()
            } else {
                format!("{key} = {value}")
            }
        };
        let help = match (ty, value.get_ref()) {
            (Ty::Duration, DeValue::Integer(_) | DeValue::Float(_)) => Some(format!(
                "a bare number has no unit; write `{}` for {raw} seconds",
                assign(&format!("\"{raw}s\""))
            )),
            (Ty::Integer { .. }, DeValue::String(text)) if text.parse::<i64>().is_ok() => Some(
                format!("write the number without quotes: `{}`", assign(text)),
            ),
            (Ty::Number, DeValue::String(text)) if text.parse::<f64>().is_ok() => Some(format!(
                "write the number without quotes: `{}`",
                assign(text)
            )),
            (Ty::Bool, DeValue::String(text))
                if text.as_ref() == "true" || text.as_ref() == "false" =>
            {
                Some(format!("write it without quotes: `{}`", assign(text)))
            }
            (
                Ty::String | Ty::SocketAddr | Ty::Duration,
                DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_),
            ) => Some(format!(
                "put it in quotes: `{}`",
                assign(&format!("\"{raw}\""))
            )),
            (Ty::Tables(_), DeValue::Table(_)) => Some(format!(
                "write [[{}]] with double brackets, once per item",
                self.path.join(".")
            )),
            _ => Some(format!("write it like `{key} = {}`", place.example)),
        };
        self.findings.push(
            Finding::new(
                value.span(),
                format!("wrong type for {}", place.describe()),
                format!("expected {}, found {found}", expected(ty)),
            )
            .maybe_help(help),
        );
    }
}

fn expected(ty: &Ty) -> String {
    match ty {
        Ty::String => "a string".into(),
        Ty::Bool => "true or false".into(),
        Ty::Integer { .. } => "a whole number".into(),
        Ty::Number => "a number".into(),
        Ty::Duration => "a duration string such as \"30s\"".into(),
        Ty::SocketAddr => "an address string such as \"127.0.0.1:8080\"".into(),
        Ty::OneOf(allowed) => format!("one of the strings {}", allowed.join(", ")),
        Ty::List(_) => "an array".into(),
        Ty::Tables(_) => "an array of tables".into(),
        Ty::Table(_) | Ty::Tagged(_) => "a table".into(),
        Ty::StringMap => "a table of strings".into(),
    }
}

fn found(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Why `text` is not a socket address, with a corrected example when one is obvious.
fn address_hint(text: &str) -> String {
    if let Some(port) = text.strip_prefix("localhost:") {
        return format!("host names are not resolved here; write \"127.0.0.1:{port}\"");
    }
    match text.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => return format!("add a port, such as \"{text}:8080\""),
        Ok(std::net::IpAddr::V6(_)) => return format!("add a port, such as \"[{text}]:8080\""),
        Err(_) => {}
    }
    if let Some(port) = text.strip_prefix(':') {
        return format!("add an IP address, such as \"127.0.0.1:{port}\"");
    }
    "write an IP address and a port, such as \"127.0.0.1:8080\" (host names are not resolved here)"
        .into()
}
