//! Checks the parsed TOML against the schema: unknown keys (with a suggestion),
//! unknown kinds, wrong types, malformed durations and addresses, missing required
//! keys. Everything found is reported at once, each at its exact place.
//!
//! Each finding also says how to set the document right for the checks that come
//! after (drop the bad value so its default applies, or put the schema's example in
//! place of a required one), so that the checks on meaning can run in the same pass
//! and a user sees every problem of a file at once, not in rounds.

use std::net::SocketAddr;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::Finding;
use crate::duration;
use crate::schema::{Key, ROOT, TAG, Table, Tagged, Ty};
use crate::suggest::closest;

/// What the structure check found.
pub(crate) struct Structure {
    /// Every structural problem; empty means serde can read the document.
    pub findings: Vec<Finding>,
    /// How to turn the document into one serde can read, in spite of the findings;
    /// `None` when a finding leaves nothing sensible to stand in (an unknown backend
    /// kind, say).
    pub repairs: Option<Vec<Repair>>,
}

/// One step into a TOML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A change that makes a bad value harmless to the checks after this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Repair {
    /// Drop the value: it is optional, so its default applies.
    Remove(Vec<Seg>),
    /// Put this valid value (TOML text) in place of a required one.
    Set(Vec<Seg>, &'static str),
}

/// Every structural problem in `root`, and how to read the rest of it anyway.
pub(crate) fn check(source: &str, root: &Spanned<DeTable<'_>>) -> Structure {
    let mut walker = Walker {
        source,
        path: Vec::new(),
        location: Vec::new(),
        findings: Vec::new(),
        repairs: Some(Vec::new()),
    };
    walker.table(root.get_ref(), root.span(), &ROOT);
    Structure {
        findings: walker.findings,
        repairs: walker.repairs,
    }
}

/// Applies `repairs` to the document; `None` if one of them does not fit it. Only
/// keys are ever removed, never array items, so no repair shifts another's path.
pub(crate) fn repair(document: toml::Table, repairs: &[Repair]) -> Option<toml::Table> {
    let mut root = toml::Value::Table(document);
    for repair in repairs {
        let (path, value) = match repair {
            Repair::Remove(path) => (path, None),
            Repair::Set(path, example) => {
                let value = toml::from_str::<toml::Table>(&format!("v = {example}"))
                    .ok()?
                    .remove("v")?;
                (path, Some(value))
            }
        };
        let (Seg::Key(key), parent) = path.split_last()? else {
            return None;
        };
        let toml::Value::Table(table) = value_at(&mut root, parent)? else {
            return None;
        };
        match value {
            Some(value) => {
                table.insert(key.clone(), value);
            }
            None => {
                table.remove(key)?;
            }
        }
    }
    match root {
        toml::Value::Table(table) => Some(table),
        _ => None,
    }
}

fn value_at<'t>(root: &'t mut toml::Value, path: &[Seg]) -> Option<&'t mut toml::Value> {
    let mut current = root;
    for seg in path {
        current = match (seg, current) {
            (Seg::Key(key), toml::Value::Table(table)) => table.get_mut(key)?,
            (Seg::Index(index), toml::Value::Array(items)) => items.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(current)
}

struct Walker<'s> {
    source: &'s str,
    /// Keys from the root to the table being walked, for `[[a.b]]` hints.
    path: Vec<String>,
    /// Keys and indexes from the root to the value being checked, for repairs.
    location: Vec<Seg>,
    findings: Vec<Finding>,
    repairs: Option<Vec<Repair>>,
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
                self.location.push(Seg::Key(key.name.to_string()));
                let before = self.findings.len();
                self.value(value, &key.ty, &place);
                // Problems inside a table were planned for where they are; a bad
                // value as a whole gives way to its default or the schema's example.
                if self.findings.len() > before && !walked_into(&key.ty, value.get_ref()) {
                    let at = self.location.clone();
                    self.plan(if key.required {
                        Repair::Set(at, key.example)
                    } else {
                        Repair::Remove(at)
                    });
                }
                self.location.pop();
                self.path.pop();
            } else if !(tagged && name_text == TAG) {
                self.unknown_key(name, table_name, &names, &foreign);
                let at = self.here(name_text);
                self.plan(Repair::Remove(at));
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
                let at = self.here(key.name);
                self.plan(Repair::Set(at, key.example));
            }
        }
    }

    /// The path of `key` in the table being walked.
    fn here(&self, key: &str) -> Vec<Seg> {
        let mut at = self.location.clone();
        at.push(Seg::Key(key.to_string()));
        at
    }

    fn plan(&mut self, repair: Repair) {
        if let Some(repairs) = &mut self.repairs {
            repairs.push(repair);
        }
    }

    /// A finding with no sensible stand-in: the checks on meaning cannot run.
    fn beyond_repair(&mut self) {
        self.repairs = None;
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
            (Ty::Upstream, DeValue::String(text)) => {
                if let Err(problem) = crate::UpstreamAddress::parse(text) {
                    self.findings.push(
                        Finding::new(
                            span,
                            format!("invalid upstream address for {}", place.describe()),
                            problem,
                        )
                        .help("write an IP address or a host name with a port, such as \"127.0.0.1:9001\" or \"localhost:9001\""),
                    );
                }
            }
            (Ty::IpNetwork, DeValue::String(text)) => {
                if text.parse::<ipnet::IpNet>().is_err() {
                    self.findings.push(
                        Finding::new(
                            span,
                            format!("invalid network for {}", place.describe()),
                            "expected an IP address, `/` and a prefix length",
                        )
                        .help(network_hint(text)),
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
                for (index, element) in items.iter().enumerate() {
                    self.location.push(Seg::Index(index));
                    let before = self.findings.len();
                    self.value(element, item, &item_place);
                    if self.findings.len() > before
                        && !matches!(element.get_ref(), DeValue::Table(_))
                    {
                        self.beyond_repair();
                    }
                    self.location.pop();
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
                        let at = self.here(name.get_ref());
                        self.plan(Repair::Remove(at));
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
            self.beyond_repair();
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
            self.beyond_repair();
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
            self.beyond_repair();
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
                Ty::String | Ty::SocketAddr | Ty::Upstream | Ty::IpNetwork | Ty::Duration,
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

/// Whether the check went into `value` (and planned repairs for what is inside)
/// rather than judging it as a whole.
fn walked_into(ty: &Ty, value: &DeValue<'_>) -> bool {
    matches!(
        (ty, value),
        (
            Ty::Table(_) | Ty::Tagged(_) | Ty::StringMap,
            DeValue::Table(_)
        ) | (Ty::Tables(_), DeValue::Array(_))
    )
}

fn expected(ty: &Ty) -> String {
    match ty {
        Ty::String => "a string".into(),
        Ty::Bool => "true or false".into(),
        Ty::Integer { .. } => "a whole number".into(),
        Ty::Number => "a number".into(),
        Ty::Duration => "a duration string such as \"30s\"".into(),
        Ty::SocketAddr => "an address string such as \"127.0.0.1:8080\"".into(),
        Ty::Upstream => "an address string such as \"127.0.0.1:9001\" or \"localhost:9001\"".into(),
        Ty::IpNetwork => "a network string such as \"10.0.0.0/8\"".into(),
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

/// Why `text` is not a CIDR network, with a corrected example when one is obvious.
fn network_hint(text: &str) -> String {
    let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
    match address.trim().parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) if prefix.is_empty() => {
            format!("for this one address write \"{address}/32\"")
        }
        Ok(std::net::IpAddr::V6(_)) if prefix.is_empty() => {
            format!("for this one address write \"{address}/128\"")
        }
        Ok(std::net::IpAddr::V4(_)) => "the prefix length of an IPv4 network is 0 to 32".into(),
        Ok(std::net::IpAddr::V6(_)) => "the prefix length of an IPv6 network is 0 to 128".into(),
        Err(_) => "write a network such as \"10.0.0.0/8\" or \"::1/128\" (host names are not resolved here)".into(),
    }
}
