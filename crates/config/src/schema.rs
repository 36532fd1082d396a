//! The shape of a config file: which keys each table allows, what type each holds and
//! which are required. The structure check walks the parsed TOML against this before
//! serde turns it into the typed model, so that every wrong key or value is reported
//! at its exact place. Tests keep it in step with `model.rs`.

/// The type a key's value must have.
#[derive(Debug)]
pub(crate) enum Ty {
    String,
    Bool,
    /// A TOML integer within these bounds (the Rust field's range).
    Integer {
        min: i64,
        max: i64,
    },
    /// An integer or a float.
    Number,
    /// A string such as "30s" (see `duration.rs`).
    Duration,
    /// A string such as "127.0.0.1:8080".
    SocketAddr,
    /// An IP address or a host name, with a port: "127.0.0.1:9001", "api.internal:9001".
    Upstream,
    /// A network in CIDR notation such as "10.0.0.0/8".
    IpNetwork,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    List(&'static Ty),
    Table(&'static Table),
    /// An array of tables, `[[service]]` or `[{ … }, { … }]`, each item being a `Table`
    /// or a `Tagged`.
    Tables(&'static Ty),
    /// A table whose keys are free and whose values are strings (environment variables).
    StringMap,
    /// A table whose allowed keys depend on its `kind`.
    Tagged(&'static Tagged),
}

#[derive(Debug)]
pub(crate) struct Key {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    /// A valid value, written as TOML, for hints.
    pub example: &'static str,
}

const fn required(name: &'static str, ty: Ty, example: &'static str) -> Key {
    Key {
        name,
        ty,
        required: true,
        example,
    }
}

const fn optional(name: &'static str, ty: Ty, example: &'static str) -> Key {
    Key {
        name,
        ty,
        required: false,
        example,
    }
}

#[derive(Debug)]
pub(crate) struct Table {
    /// How messages place a key in the table: "in [server]", "at the top level".
    pub name: &'static str,
    pub keys: &'static [Key],
}

#[derive(Debug)]
pub(crate) struct Tagged {
    pub name: &'static str,
    /// What the tag selects, for messages: "backend kind".
    pub what: &'static str,
    pub common: &'static [Key],
    pub variants: &'static [Variant],
}

impl Tagged {
    pub fn kinds(&self) -> Vec<&'static str> {
        self.variants.iter().map(|variant| variant.kind).collect()
    }
}

#[derive(Debug)]
pub(crate) struct Variant {
    pub kind: &'static str,
    pub keys: &'static [Key],
}

/// The key that selects a tagged table's variant.
pub(crate) const TAG: &str = "kind";

const U16: Ty = Ty::Integer {
    min: 0,
    max: u16::MAX as i64,
};
const U32: Ty = Ty::Integer {
    min: 0,
    max: u32::MAX as i64,
};
const U64: Ty = Ty::Integer {
    min: 0,
    max: i64::MAX,
};

pub(crate) static ROOT: Table = Table {
    name: "at the top level",
    keys: &[
        optional(
            "server",
            Ty::Table(&SERVER),
            "{ listen = \"127.0.0.1:7070\" }",
        ),
        optional(
            "service",
            Ty::Tables(&Ty::Table(&SERVICE)),
            "[{ name = \"web\" }]",
        ),
        optional("telemetry", Ty::Table(&TELEMETRY), "{ interval = \"5s\" }"),
        optional(
            "notifier",
            Ty::Tables(&Ty::Tagged(&NOTIFIER)),
            "[{ name = \"slack\", kind = \"slack\", url = \"https://hooks.slack.com/services/T0/B0/X\" }]",
        ),
        optional(
            "escalation",
            Ty::Tables(&Ty::Table(&ESCALATION)),
            "[{ name = \"default\", steps = [{ after = \"15m\", notify = [\"pagerduty\"] }] }]",
        ),
        optional(
            "incident_rule",
            Ty::Tables(&Ty::Table(&INCIDENT_RULE)),
            "[{ name = \"high_error_rate\", when = \"service.error_rate > 5% for 30s\" }]",
        ),
        optional(
            "incident_action",
            Ty::Tables(&Ty::Table(&INCIDENT_ACTION)),
            "[{ name = \"page\", kind = \"run\", command = \"./page.sh\" }]",
        ),
        optional(
            "metric_provider",
            Ty::Tables(&Ty::Tagged(&METRIC_PROVIDER)),
            "[{ name = \"prometheus\", kind = \"prometheus\", address = \"http://127.0.0.1:9090\" }]",
        ),
    ],
};

pub(crate) static METRIC_PROVIDER: Tagged = Tagged {
    name: "in [[metric_provider]]",
    what: "metric provider kind",
    common: &[required("name", Ty::String, "\"prometheus\"")],
    variants: &[Variant {
        kind: "prometheus",
        keys: &[
            required("address", Ty::String, "\"http://127.0.0.1:9090\""),
            optional("timeout", Ty::Duration, "\"5s\""),
        ],
    }],
};

pub(crate) static ANALYSIS_METRIC: Table = Table {
    name: "in [[service.analysis.metric]]",
    keys: &[
        required("name", Ty::String, "\"error_ratio\""),
        required("provider", Ty::String, "\"prometheus\""),
        required(
            "query",
            Ty::String,
            "'sum(rate(http_requests_total{version=\"{canary}\",code=~\"5..\"}[1m])) / sum(rate(http_requests_total{version=\"{canary}\"}[1m]))'",
        ),
        optional("success", Ty::String, "\"result < 0.05\""),
        optional(
            "compare",
            Ty::OneOf(&["lower_is_better", "higher_is_better"]),
            "\"lower_is_better\"",
        ),
        optional("tolerance_pct", Ty::Number, "10.0"),
        optional("tolerance", Ty::Number, "0.01"),
        optional("interval", Ty::Duration, "\"30s\""),
        optional("failure_limit", U32, "0"),
        optional("inconclusive_limit", U32, "5"),
        optional("error_limit", U32, "4"),
        optional("unavailable_limit", Ty::Duration, "\"10m\""),
    ],
};

pub(crate) static INCIDENT_RULE: Table = Table {
    name: "in [[incident_rule]]",
    keys: &[
        required("name", Ty::String, "\"high_error_rate\""),
        optional(
            "severity",
            Ty::OneOf(&["critical", "high", "medium", "low"]),
            "\"high\"",
        ),
        optional("when", Ty::String, "\"service.error_rate > 5% for 30s\""),
        optional("service", Ty::String, "\"*\""),
        optional(
            "actions",
            Ty::List(&Ty::String),
            "[\"rollback\", \"shed_load\"]",
        ),
        optional("notify", Ty::List(&Ty::String), "[\"slack\"]"),
        optional("escalate_after", Ty::Duration, "\"15m\""),
        optional("escalation", Ty::String, "\"default\""),
        optional("resolve_after", Ty::Duration, "\"1m\""),
        optional("enabled", Ty::Bool, "true"),
        optional("dry_run", Ty::Bool, "false"),
    ],
};

pub(crate) static INCIDENT_ACTION: Table = Table {
    name: "in [[incident_action]]",
    keys: &[
        required("name", Ty::String, "\"page\""),
        required(
            "kind",
            Ty::OneOf(&[
                "rollback",
                "scale_up",
                "emergency_scale_up",
                "circuit_breaker",
                "shed_load",
                "freeze_deploys",
                "lock_down",
                "isolate_instance",
                "run",
            ]),
            "\"run\"",
        ),
        optional("cooldown", Ty::Duration, "\"5m\""),
        optional("max_per_window", U32, "3"),
        optional("window", Ty::Duration, "\"1h\""),
        optional("dry_run", Ty::Bool, "false"),
        optional("retries", U32, "2"),
        optional("timeout", Ty::Duration, "\"30s\""),
        optional("command", Ty::String, "\"./page-oncall.sh\""),
        optional("url", Ty::String, "\"http://127.0.0.1:9000/hook\""),
        optional("revoke_tokens_created_within", Ty::Duration, "\"15m\""),
        optional("lift_every", Ty::Duration, "\"10s\""),
        optional("by", U32, "2"),
        optional("factor", Ty::Number, "2.0"),
        optional("max", U32, "10"),
    ],
};

pub(crate) static TELEMETRY: Table = Table {
    name: "in [telemetry]",
    keys: &[
        optional("interval", Ty::Duration, "\"5s\""),
        optional("retention", Ty::Duration, "\"1h\""),
        optional("downsampled_retention", Ty::Duration, "\"24h\""),
        optional("warn_error_rate", Ty::Number, "5.0"),
        optional("p95_objective", Ty::Duration, "\"500ms\""),
    ],
};

pub(crate) static SERVER: Table = Table {
    name: "in [server]",
    keys: &[
        optional("listen", Ty::SocketAddr, "\"127.0.0.1:7070\""),
        optional("data_dir", Ty::String, "\"rampart-data\""),
        optional(
            "on_restart",
            Ty::OneOf(&["rollback", "resume"]),
            "\"rollback\"",
        ),
        optional("insecure_listen", Ty::Bool, "false"),
        optional("public_url", Ty::String, "\"https://rampart.example.com\""),
        optional("instances_outlive", Ty::Bool, "true"),
        optional(
            "tls",
            Ty::Table(&TLS),
            "{ cert = \"/etc/rampart/tls/cert.pem\", key = \"/etc/rampart/tls/key.pem\" }",
        ),
    ],
};

pub(crate) static TLS: Table = Table {
    name: "in a tls table",
    keys: &[
        required("cert", Ty::String, "\"/etc/rampart/tls/cert.pem\""),
        required("key", Ty::String, "\"/etc/rampart/tls/key.pem\""),
    ],
};

pub(crate) static SERVICE: Table = Table {
    name: "in [[service]]",
    keys: &[
        required("name", Ty::String, "\"web\""),
        required("listen", Ty::SocketAddr, "\"127.0.0.1:8080\""),
        required(
            "backend",
            Ty::Tagged(&BACKEND),
            "{ kind = \"static\", stable = [\"127.0.0.1:9001\"] }",
        ),
        optional("strategy", Ty::Table(&STRATEGY), "{ steps = [] }"),
        optional("analysis", Ty::Table(&ANALYSIS), "{ interval = \"10s\" }"),
        optional(
            "router",
            Ty::Table(&ROUTER),
            "{ request_timeout = \"30s\" }",
        ),
        optional("check", Ty::Tables(&Ty::Tagged(&CHECK)), "[]"),
        optional("hook", Ty::Tables(&Ty::Tagged(&HOOK)), "[]"),
        optional("notify_rollouts", Ty::List(&Ty::String), "[\"slack\"]"),
        optional(
            "autoscale",
            Ty::Table(&AUTOSCALE),
            "{ max = 10, targets = [{ metric = \"cpu\", value = 70 }] }",
        ),
        optional(
            "tls",
            Ty::Table(&TLS),
            "{ cert = \"/etc/rampart/tls/cert.pem\", key = \"/etc/rampart/tls/key.pem\" }",
        ),
    ],
};

pub(crate) static AUTOSCALE: Table = Table {
    name: "in [service.autoscale]",
    keys: &[
        optional("min", U32, "2"),
        required("max", U32, "20"),
        required(
            "targets",
            Ty::Tables(&Ty::Table(&AUTOSCALE_TARGET)),
            "[{ metric = \"cpu\", value = 70 }]",
        ),
        optional("sync", Ty::Duration, "\"15s\""),
        optional("scale_down_stabilization", Ty::Duration, "\"5m\""),
        optional("scale_up_stabilization", Ty::Duration, "\"30s\""),
        optional(
            "scale_up",
            Ty::Table(&SCALING_RULES),
            "{ policies = [{ instances = 4, period = \"15s\" }], select = \"max\" }",
        ),
        optional(
            "scale_down",
            Ty::Table(&SCALING_RULES),
            "{ policies = [{ percent = 100, period = \"15s\" }], select = \"max\" }",
        ),
        optional(
            "mode",
            Ty::OneOf(&["reactive", "predictive", "forecast_only"]),
            "\"reactive\"",
        ),
        optional("lead_time", Ty::Duration, "\"2m\""),
        optional("cost_per_instance_hour", Ty::Number, "0.05"),
        optional("max_cost_per_hour", Ty::Number, "1.0"),
    ],
};

pub(crate) static AUTOSCALE_TARGET: Table = Table {
    name: "in an autoscale target",
    keys: &[
        required(
            "metric",
            Ty::OneOf(&["cpu", "memory_mib", "rps_per_instance", "p95_ms"]),
            "\"cpu\"",
        ),
        required("value", Ty::Number, "70"),
    ],
};

pub(crate) static SCALING_RULES: Table = Table {
    name: "in autoscale scale_up / scale_down",
    keys: &[
        optional(
            "policies",
            Ty::Tables(&Ty::Table(&SCALING_POLICY)),
            "[{ percent = 100, period = \"15s\" }]",
        ),
        optional("select", Ty::OneOf(&["max", "min", "disabled"]), "\"max\""),
    ],
};

pub(crate) static SCALING_POLICY: Table = Table {
    name: "in an autoscale policy",
    keys: &[
        optional("instances", U32, "4"),
        optional("percent", U32, "100"),
        required("period", Ty::Duration, "\"15s\""),
    ],
};

pub(crate) static BACKEND: Tagged = Tagged {
    name: "in [service.backend]",
    what: "backend kind",
    common: &[],
    variants: &[
        Variant {
            kind: "process",
            keys: &[
                required(
                    "command",
                    Ty::String,
                    "\"./server --port {port} --version {version}\"",
                ),
                optional("instances", U32, "2"),
                optional("ready_path", Ty::String, "\"/healthz\""),
                optional("ready_timeout", Ty::Duration, "\"30s\""),
                optional("env", Ty::StringMap, "{ RUST_LOG = \"info\" }"),
                optional("working_dir", Ty::String, "\"/srv/app\""),
                optional("stop_grace", Ty::Duration, "\"10s\""),
                optional("log_max_bytes", U64, "10485760"),
                optional("initial_version", Ty::String, "\"v1\""),
            ],
        },
        Variant {
            kind: "static",
            keys: &[
                required("stable", Ty::List(&Ty::Upstream), "[\"127.0.0.1:9001\"]"),
                optional("canary", Ty::List(&Ty::Upstream), "[\"127.0.0.1:9002\"]"),
                optional("resolve_every", Ty::Duration, "\"30s\""),
                optional("stable_version", Ty::String, "\"v1\""),
            ],
        },
    ],
};

pub(crate) static STRATEGY: Table = Table {
    name: "in [service.strategy]",
    keys: &[
        optional(
            "steps",
            Ty::Tables(&Ty::Table(&STEP)),
            "[{ weight = 5, hold = \"30s\" }, { weight = 50, hold = \"1m\" }]",
        ),
        optional("scale_down_delay", Ty::Duration, "\"30s\""),
        optional("progress_deadline", Ty::Duration, "\"10m\""),
        optional("on_deadline", Ty::OneOf(&["fail", "pause"]), "\"fail\""),
        optional("failure_limit", U32, "1"),
        optional("validation_deadline", Ty::Duration, "\"30m\""),
        optional("start_deadline", Ty::Duration, "\"5m\""),
        optional("promotion_deadline", Ty::Duration, "\"5m\""),
        optional("rollback_deadline", Ty::Duration, "\"2m\""),
        optional(
            "kind",
            Ty::OneOf(&["canary", "blue_green"]),
            "\"blue_green\"",
        ),
        optional("preview_listen", Ty::SocketAddr, "\"127.0.0.1:8081\""),
        optional("preview_instances", Ty::Integer { min: 1, max: 1000 }, "2"),
        optional("auto_promotion_enabled", Ty::Bool, "true"),
        optional("auto_promotion_seconds", U32, "30"),
        optional("pre_promotion_analysis", Ty::Duration, "\"1m\""),
        optional("post_promotion_analysis", Ty::Duration, "\"1m\""),
    ],
};

pub(crate) static STEP: Table = Table {
    name: "in a strategy step",
    keys: &[
        optional("weight", Ty::Number, "5"),
        optional("hold", Ty::Duration, "\"30s\""),
        optional(
            "pause",
            Ty::OneOf(&["until_promoted"]),
            "\"until_promoted\"",
        ),
        optional("approve", Ty::String, "\"release-manager\""),
        optional(
            "match",
            Ty::Table(&STEP_MATCH),
            "{ header = \"x-tester\", value = \"yes\" }",
        ),
        optional("mirror", Ty::Number, "20"),
    ],
};

pub(crate) static STEP_MATCH: Table = Table {
    name: "in a step's match",
    keys: &[
        optional("header", Ty::String, "\"x-tester\""),
        optional("cookie", Ty::String, "\"beta\""),
        optional("value", Ty::String, "\"yes\""),
        optional("prefix", Ty::String, "\"beta-\""),
    ],
};

/// A webhook's keys, shared by every kind that POSTs.
static WEBHOOK_KEYS: [Key; 4] = [
    required("url", Ty::String, "\"http://127.0.0.1:9100/hooks/rollout\""),
    optional("timeout", Ty::Duration, "\"10s\""),
    optional("retries", U32, "2"),
    optional("headers", Ty::StringMap, "{ Authorization = \"Bearer …\" }"),
];

static CONFIRM_KEYS: [Key; 5] = [
    required("url", Ty::String, "\"http://127.0.0.1:9100/hooks/confirm\""),
    optional("timeout", Ty::Duration, "\"10s\""),
    optional("retries", U32, "2"),
    optional("headers", Ty::StringMap, "{ Authorization = \"Bearer …\" }"),
    optional("interval", Ty::Duration, "\"10s\""),
];

pub(crate) static HOOK: Tagged = Tagged {
    name: "in [[service.hook]]",
    what: "hook kind",
    common: &[required("name", Ty::String, "\"smoke-tests\"")],
    variants: &[
        Variant {
            kind: "pre_rollout",
            keys: &WEBHOOK_KEYS,
        },
        Variant {
            kind: "rollout_step",
            keys: &WEBHOOK_KEYS,
        },
        Variant {
            kind: "confirm_traffic_increase",
            keys: &CONFIRM_KEYS,
        },
        Variant {
            kind: "confirm_promotion",
            keys: &CONFIRM_KEYS,
        },
        Variant {
            kind: "post_rollout",
            keys: &WEBHOOK_KEYS,
        },
        Variant {
            kind: "rollback",
            keys: &WEBHOOK_KEYS,
        },
        Variant {
            kind: "load_test",
            keys: &[
                optional("rate", Ty::Number, "10"),
                optional("duration", Ty::Duration, "\"5m\""),
                optional("path", Ty::String, "\"/\""),
                optional("timeout", Ty::Duration, "\"10s\""),
                optional("headers", Ty::StringMap, "{ Host = \"shop.example.com\" }"),
            ],
        },
    ],
};

pub(crate) static ANALYSIS: Table = Table {
    name: "in [service.analysis]",
    keys: &[
        optional("interval", Ty::Duration, "\"10s\""),
        optional(
            "judge",
            Ty::OneOf(&["sequential", "threshold"]),
            "\"sequential\"",
        ),
        optional("max_error_rate", Ty::Number, "5.0"),
        optional("min_success_rate", Ty::Number, "99.0"),
        optional("max_p95_ms", Ty::Number, "250.0"),
        optional("max_p99_ms", Ty::Number, "500.0"),
        optional("max_latency_regression", Ty::Number, "20.0"),
        optional("min_requests", U64, "50"),
        optional("alpha", Ty::Number, "0.01"),
        optional("allowed_error_increase", Ty::Number, "10.0"),
        optional("latency_tolerance", Ty::Number, "10.0"),
        optional("latency_tolerance_ms", Ty::Number, "1.0"),
        optional("warmup", Ty::Duration, "\"5s\""),
        optional("require_confidence", Ty::Bool, "false"),
        optional("error_rate_margin", Ty::Number, "1.0"),
        optional(
            "metric",
            Ty::Tables(&Ty::Table(&ANALYSIS_METRIC)),
            "[{ name = \"error_ratio\", provider = \"prometheus\", query = 'x{version=\"{canary}\"}', success = \"result < 0.05\" }]",
        ),
    ],
};

pub(crate) static ROUTER: Table = Table {
    name: "in [service.router]",
    keys: &[
        optional("connect_timeout", Ty::Duration, "\"2s\""),
        optional("request_timeout", Ty::Duration, "\"30s\""),
        optional("version_header", Ty::String, "\"x-rampart-version\""),
        optional(
            "version_header_from",
            Ty::List(&Ty::IpNetwork),
            "[\"10.0.0.0/8\", \"127.0.0.1/32\"]",
        ),
        optional("sticky_cookie", Ty::String, "\"rampart_version\""),
        optional("max_concurrency", U32, "1000"),
        optional("outlier_consecutive_failures", U32, "5"),
        optional("outlier_base_ejection", Ty::Duration, "\"30s\""),
        optional("drain_grace", Ty::Duration, "\"30s\""),
        optional("header_read_timeout", Ty::Duration, "\"10s\""),
        optional("idle_timeout", Ty::Duration, "\"60s\""),
        optional("body_read_timeout", Ty::Duration, "\"30s\""),
        // hyper's smallest read buffer is 8 KiB; 1 MiB of headers is already abuse.
        optional(
            "max_header_bytes",
            Ty::Integer {
                min: 8192,
                max: 1024 * 1024,
            },
            "65536",
        ),
        optional("max_headers", Ty::Integer { min: 1, max: 1000 }, "100"),
        optional(
            "max_connections_per_client",
            Ty::Integer {
                min: 1,
                max: 1_000_000,
            },
            "1024",
        ),
        optional("mirror_non_idempotent", Ty::Bool, "false"),
        optional(
            "mirror_max_body_bytes",
            Ty::Integer {
                min: 0,
                max: 64 * 1024 * 1024,
            },
            "65536",
        ),
        optional(
            "mirror_max_in_flight",
            Ty::Integer {
                min: 1,
                max: 100_000,
            },
            "256",
        ),
    ],
};

pub(crate) static CHECK: Tagged = Tagged {
    name: "in [[service.check]]",
    what: "check kind",
    common: &[
        required("name", Ty::String, "\"smoke\""),
        optional("timeout", Ty::Duration, "\"1m\""),
        optional("retries", U32, "2"),
        optional("retry_backoff", Ty::Duration, "\"1s\""),
        optional("critical", Ty::Bool, "true"),
    ],
    variants: &[
        Variant {
            kind: "command",
            keys: &[
                required("command", Ty::String, "\"make test\""),
                optional("working_dir", Ty::String, "\".\""),
            ],
        },
        Variant {
            kind: "http",
            keys: &[
                required("url", Ty::String, "\"http://127.0.0.1:9001/healthz\""),
                optional("method", Ty::String, "\"GET\""),
                optional("expect_status", U16, "200"),
                optional("body_contains", Ty::String, "\"ok\""),
            ],
        },
        Variant {
            kind: "tcp",
            keys: &[required("address", Ty::String, "\"127.0.0.1:5432\"")],
        },
        Variant {
            kind: "prometheus",
            keys: &[
                required("url", Ty::String, "\"http://127.0.0.1:9090\""),
                required("query", Ty::String, "\"sum(rate(errors_total[5m]))\""),
                required("expect", Ty::String, "\"< 0.01\""),
            ],
        },
    ],
};

pub(crate) static NOTIFIER: Tagged = Tagged {
    name: "in [[notifier]]",
    what: "notifier kind",
    common: &[
        required("name", Ty::String, "\"slack\""),
        optional("timeout", Ty::Duration, "\"10s\""),
        optional("rate_limit", Ty::Number, "1.0"),
        optional("retry_for", Ty::Duration, "\"6h\""),
    ],
    variants: &[
        Variant {
            kind: "slack",
            keys: &[required(
                "url",
                Ty::String,
                "\"https://hooks.slack.com/services/T000/B000/XXXX\"",
            )],
        },
        Variant {
            kind: "pagerduty",
            keys: &[
                required(
                    "routing_key",
                    Ty::String,
                    "\"0123456789abcdef0123456789abcdef\"",
                ),
                optional(
                    "url",
                    Ty::String,
                    "\"https://events.pagerduty.com/v2/enqueue\"",
                ),
            ],
        },
        Variant {
            kind: "webhook",
            keys: &[
                required("url", Ty::String, "\"https://hooks.example.com/rampart\""),
                optional("secret", Ty::String, "\"a-long-random-secret\""),
            ],
        },
    ],
};

pub(crate) static ESCALATION: Table = Table {
    name: "in [[escalation]]",
    keys: &[
        required("name", Ty::String, "\"default\""),
        required(
            "steps",
            Ty::Tables(&Ty::Table(&ESCALATION_STEP)),
            "[{ after = \"15m\", notify = [\"pagerduty\"] }]",
        ),
        optional("repeat", U32, "2"),
    ],
};

pub(crate) static ESCALATION_STEP: Table = Table {
    name: "in an escalation step",
    keys: &[
        required("after", Ty::Duration, "\"15m\""),
        required("notify", Ty::List(&Ty::String), "[\"pagerduty\"]"),
    ],
};
