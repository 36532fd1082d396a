//! Checks on the meaning of a structurally valid config: names, listen addresses,
//! step weights, backend and analysis settings, checks and router options. Every
//! problem is collected, each pointing at the value it is about.

use std::net::SocketAddr;

use toml::Spanned;
use toml::de::DeTable;

use crate::diagnostic::Finding;
use crate::locate::Locator;
use crate::model::{
    AnalysisConfig, AutoscaleConfig, BackendConfig, CheckConfig, CheckKind, Config, JudgeKind,
    PolicySelect, ProcessBackendConfig, RouterConfig, ScalingRulesConfig, ServiceConfig,
    StaticBackendConfig, StepConfig, StrategyConfig, StrategyKind, TelemetryConfig,
};
use crate::rules;
use crate::suggest::closest;
use crate::upstream_address::UpstreamAddress;

const NAME_RULE: &str = "names may use only lowercase letters a-z, digits, `-` and `_`, because they appear in URLs and metric labels";
const PLACEHOLDERS: &[&str] = &["version", "port", "instance", "rampart"];
/// Full-resolution points per series: 24 h at the default 5 s interval.
const MAX_FULL_POINTS: u64 = 17_280;

pub(crate) fn check(
    config: &Config,
    source: &str,
    document: &Spanned<DeTable<'_>>,
) -> Vec<Finding> {
    let mut checker = Checker {
        at: Locator::new(source, document),
        findings: Vec::new(),
    };
    checker.server(config);
    checker.services(config);
    checker.telemetry(&config.telemetry);
    checker.incidents(config);
    checker.public_url(config);
    let mut findings = checker.findings;
    findings.extend(crate::notifiers::check(
        config,
        &Locator::new(source, document),
    ));
    findings.extend(crate::metric_analysis::check(
        config,
        &Locator::new(source, document),
    ));
    findings
}

pub(crate) struct Checker<'a, 'i> {
    pub(crate) at: Locator<'a, 'i>,
    findings: Vec<Finding>,
}

impl Checker<'_, '_> {
    pub(crate) fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// Without TLS tokens travel in plain HTTP: the API then stays on loopback unless
    /// the config says the network is trusted.
    fn server(&mut self, config: &Config) {
        let listen = config.server.listen;
        if listen.ip().is_loopback() || config.server.tls.is_some() || config.server.insecure_listen
        {
            return;
        }
        let span = match self.at.find("server.listen") {
            Some(span) => span,
            None => self.at.span("server"),
        };
        self.push(
            Finding::new(
                span,
                format!("the API would listen on {listen}, beyond this machine, without TLS"),
                "not a loopback address",
            )
            .help(format!(
                "bearer tokens would cross the network in plain text; configure TLS with `tls = {{ cert = \"cert.pem\", key = \"key.pem\" }}` in [server], or listen on 127.0.0.1:{port} behind a TLS-terminating proxy, or set `insecure_listen = true` in [server] if the network is trusted",
                port = listen.port()
            )),
        );
    }

    fn public_url(&mut self, config: &Config) {
        if let Some(url) = &config.server.public_url
            && let Some(problem) = rules::http_url_problem(url)
        {
            self.push(
                Finding::new(
                    self.at.span("server.public_url"),
                    format!("invalid `public_url` `{url}`"),
                    problem,
                )
                .help("write the URL people use to reach rampart's API, such as \"https://rampart.example.com\""),
            );
        }
    }

    fn services(&mut self, config: &Config) {
        for (index, service) in config.services.iter().enumerate() {
            let path = format!("service.{index}");
            self.service_name(config, index, &path);
            self.listen(config, index, &path);
            match &service.backend {
                BackendConfig::Process(process) => self.process(process, &path),
                BackendConfig::Static(upstreams) => self.upstreams(config, upstreams, &path),
            }
            self.strategy(&service.strategy, &path);
            self.blue_green(config, index, &path);
            self.step_gates(service, &path);
            self.hooks(service, &path);
            self.analysis(&service.analysis, &path);
            self.router(&service.router, &path);
            self.checks(service, &path);
            if let Some(autoscale) = &service.autoscale {
                self.autoscale(service, autoscale, &path);
            }
        }
    }

    fn service_name(&mut self, config: &Config, index: usize, path: &str) {
        let name = &config.services[index].name;
        let span = self.at.span(&format!("{path}.name"));
        if name.is_empty() {
            self.push(
                Finding::new(span.clone(), "empty service name", "a service needs a name")
                    .help(NAME_RULE),
            );
        } else if !rules::is_valid_name(name) {
            self.push(
                Finding::new(
                    span.clone(),
                    format!("invalid service name `{name}`"),
                    "only a-z, 0-9, `-` and `_` are allowed",
                )
                .help(format!(
                    "{NAME_RULE}; for example `{}`",
                    rules::name_like(name)
                )),
            );
        }
        if let Some(first) = config.services[..index]
            .iter()
            .position(|s| s.name == *name)
        {
            let first_line = self
                .at
                .line(&self.at.span(&format!("service.{first}.name")));
            self.push(
                Finding::new(
                    span,
                    format!("duplicate service name `{name}`"),
                    "this name is already taken",
                )
                .help(format!(
                    "the first service named `{name}` is on line {first_line}; service names must be unique"
                )),
            );
        }
    }

    fn listen(&mut self, config: &Config, index: usize, path: &str) {
        let service = &config.services[index];
        let span = self.at.span(&format!("{path}.listen"));
        let server = config.server.listen;
        if rules::listeners_overlap(service.listen, server) {
            let where_server = match self.at.find("server.listen") {
                Some(at) => format!("[server] listens on {server} (line {})", self.at.line(&at)),
                None => format!("[server] listens on {server} by default"),
            };
            self.push(
                Finding::new(
                    span.clone(),
                    format!(
                        "listen address {} of service `{}` clashes with the [server] listen address",
                        service.listen, service.name
                    ),
                    "already used by the server",
                )
                .help(format!(
                    "{where_server}{}; give the service another port",
                    overlap_note(service.listen, server)
                )),
            );
        }
        if let Some(other) = config.services[..index]
            .iter()
            .position(|other| rules::listeners_overlap(service.listen, other.listen))
        {
            let other_service = &config.services[other];
            let other_line = self
                .at
                .line(&self.at.span(&format!("service.{other}.listen")));
            self.push(
                Finding::new(
                    span,
                    format!(
                        "listen address {} of service `{}` clashes with service `{}`",
                        service.listen, service.name, other_service.name
                    ),
                    format!("already used by `{}`", other_service.name),
                )
                .help(format!(
                    "`{}` listens on {} (line {other_line}){}; each service needs its own port",
                    other_service.name,
                    other_service.listen,
                    overlap_note(service.listen, other_service.listen)
                )),
            );
        }
    }

    fn process(&mut self, process: &ProcessBackendConfig, path: &str) {
        let backend = format!("{path}.backend");
        self.version(
            &process.initial_version,
            &format!("{backend}.initial_version"),
        );
        if process.instances == 0 {
            self.push(
                Finding::new(
                    self.at.span(&format!("{backend}.instances")),
                    "`instances` must be at least 1",
                    "no instance would run",
                )
                .help("set `instances = 1` or more"),
            );
        }
        let command_span = self.at.span(&format!("{backend}.command"));
        let unknown = rules::unknown_placeholders(&process.command, PLACEHOLDERS);
        // A misspelt `{port}` gets its own "did you mean" finding; saying that `{port}`
        // is missing as well would only repeat it.
        let port_misspelt = unknown.iter().any(|placeholder| {
            closest(placeholder.trim_matches(['{', '}']), PLACEHOLDERS) == Some("port")
        });
        if process.command.trim().is_empty() {
            self.push(
                Finding::new(command_span.clone(), "empty process command", "nothing to run")
                    .help("write the command that starts one instance, such as \"./server --port {port}\""),
            );
        } else if !process.command.contains("{port}") && !port_misspelt {
            self.push(
                Finding::new(
                    command_span.clone(),
                    "process command does not contain `{port}`",
                    "no `{port}` placeholder",
                )
                .help(format!(
                    "rampart picks a free port for each instance and writes it in place of `{{port}}`; without it an instance cannot be told where to listen. For example: command = \"{} {}\"",
                    process.command.trim(),
                    port_argument(&process.command)
                )),
            );
        }
        for placeholder in unknown {
            let span = self
                .at
                .within(&command_span, placeholder)
                .unwrap_or(command_span.clone());
            let near = closest(placeholder.trim_matches(['{', '}']), PLACEHOLDERS)
                .map(|near| format!("did you mean `{{{near}}}`? "))
                .unwrap_or_default();
            self.push(
                Finding::new(
                    span,
                    format!("unknown placeholder `{placeholder}` in process command"),
                    "not a placeholder",
                )
                .help(format!(
                    "{near}placeholders: {{version}}, {{port}}, {{instance}}, {{rampart}}"
                )),
            );
        }
        if !process.ready_path.starts_with('/') {
            self.push(
                Finding::new(
                    self.at.span(&format!("{backend}.ready_path")),
                    "`ready_path` must start with `/`",
                    "not a path on the instance",
                )
                .help(format!(
                    "write ready_path = \"/{}\"",
                    process.ready_path.trim_start_matches('/')
                )),
            );
        }
        for name in process.env.keys() {
            if name.is_empty() || name.contains(['=', '\0']) {
                self.push(
                    Finding::new(
                        self.at.span(&format!("{backend}.env")),
                        format!("invalid environment variable name `{name}`"),
                        "in this table",
                    )
                    .help("environment variable names must be non-empty and contain no `=`"),
                );
            }
        }
    }

    fn upstreams(&mut self, config: &Config, upstreams: &StaticBackendConfig, path: &str) {
        let backend = format!("{path}.backend");
        self.version(
            &upstreams.stable_version,
            &format!("{backend}.stable_version"),
        );
        if upstreams.stable.is_empty() {
            self.push(
                Finding::new(
                    self.at.span(&format!("{backend}.stable")),
                    "static backend has no stable upstream",
                    "empty",
                )
                .help(
                    "list where the running version listens, such as stable = [\"127.0.0.1:9001\"]",
                ),
            );
        }
        let listed = upstreams
            .stable
            .iter()
            .enumerate()
            .map(|(i, addr)| (format!("{backend}.stable.{i}"), addr))
            .chain(
                upstreams
                    .canary
                    .iter()
                    .enumerate()
                    .map(|(i, addr)| (format!("{backend}.canary.{i}"), addr)),
            )
            .collect::<Vec<_>>();
        for (position, (at, addr)) in listed.iter().enumerate() {
            let span = self.at.span(at);
            if let Some((first_at, _)) = listed[..position].iter().find(|(_, seen)| seen == addr) {
                let first_line = self.at.line(&self.at.span(first_at));
                let earlier = if first_line == self.at.line(&span) {
                    "earlier on this line".to_string()
                } else {
                    format!("on line {first_line}")
                };
                self.push(
                    Finding::new(span.clone(), format!("upstream {addr} is listed twice"), "duplicate")
                        .help(format!("it is already listed {earlier}; each upstream may appear once, in stable or canary")),
                );
            }
            // `localhost` is loopback wherever it resolves; other names are checked
            // when rampart resolves them.
            let literal = match addr {
                UpstreamAddress::Ip(ip) => Some(*ip),
                UpstreamAddress::Name { host, port } if host == "localhost" => {
                    Some(SocketAddr::from(([127, 0, 0, 1], *port)))
                }
                UpstreamAddress::Name { .. } => None,
            };
            if let Some(owner) = literal.and_then(|addr| listener_at(config, addr)) {
                self.push(
                    Finding::new(
                        span,
                        format!("upstream {addr} is rampart's own listen address"),
                        format!("{owner} listens here"),
                    )
                    .help("requests would loop back into rampart; point the backend at where the application listens"),
                );
            }
        }
    }

    /// A version name from the config: the same rules as a version given to the API.
    fn version(&mut self, version: &str, at: &str) {
        if let Err(rule) = rampart_core::version::check_version(version) {
            let key = at.rsplit('.').next().unwrap_or(at);
            self.push(
                Finding::new(
                    self.at.span(at),
                    format!("invalid `{key}` `{}`", version.escape_debug()),
                    rule,
                )
                .help("versions are put into instance commands and file names; use 1 to 128 letters, digits, `.`, `_`, `-` or `+`, not starting with `-`, such as \"v1\" or \"1.4.0\""),
            );
        }
    }

    fn strategy(&mut self, strategy: &StrategyConfig, path: &str) {
        let steps_path = format!("{path}.strategy.steps");
        if strategy.steps.is_empty() {
            self.push(
                Finding::new(self.at.span(&steps_path), "strategy has no steps", "empty")
                    .help("add at least one step; to move all traffic at once write steps = [{ weight = 100, hold = \"1m\" }]"),
            );
        }
        let in_range = |weight: f64| (0.0..=100.0).contains(&weight);
        for (index, step) in strategy.steps.iter().enumerate() {
            self.step_steering(step, &format!("{steps_path}.{index}"));
            let span = self.at.span(&format!("{steps_path}.{index}.weight"));
            if !in_range(step.weight) {
                self.push(
                    Finding::new(
                        span,
                        format!("step weight {} is out of range", step.weight),
                        "must be between 0 and 100",
                    )
                    .help("a weight is the percentage of traffic sent to the canary"),
                );
            } else if let Some(previous) = index
                .checked_sub(1)
                .map(|i| &strategy.steps[i])
                // A match or mirror step may keep the weight of the step before it: it
                // changes what else reaches the canary.
                .filter(|previous| {
                    in_range(previous.weight)
                        && (step.weight < previous.weight
                            || (step.weight == previous.weight
                                && !step.steers()
                                && !previous.steers()))
                })
                .map(|previous| previous.weight)
            {
                self.push(
                    Finding::new(
                        span,
                        format!("step weights must increase: {} follows {previous}", step.weight),
                        format!("not above the previous step's {previous}"),
                    )
                    .help("each step sends more traffic to the canary than the one before; after the last step the canary is promoted to 100%"),
                );
            }
        }
        if strategy.failure_limit == 0 {
            self.push(
                Finding::new(
                    self.at.span(&format!("{path}.strategy.failure_limit")),
                    "`failure_limit` must be at least 1",
                    "no failed analysis could ever roll back",
                )
                .help(
                    "it counts failed analyses in a row before rollback; 1 rolls back on the first",
                ),
            );
        }
    }

    /// Blue-green's keys: only with `kind = "blue_green"`, which needs a preview
    /// listener of its own.
    fn blue_green(&mut self, config: &Config, index: usize, path: &str) {
        let strategy = &config.services[index].strategy;
        let strategy_path = format!("{path}.strategy");
        let blue_green_keys = [
            "preview_listen",
            "preview_instances",
            "auto_promotion_enabled",
            "auto_promotion_seconds",
            "pre_promotion_analysis",
            "post_promotion_analysis",
        ];
        if strategy.kind == StrategyKind::Canary {
            for key in blue_green_keys {
                let at = format!("{strategy_path}.{key}");
                if let Some(span) = self.at.find(&at) {
                    self.push(
                        Finding::new(
                            span,
                            format!("`{key}` is for blue-green rollouts"),
                            "this strategy is a canary",
                        )
                        .help(
                            "add `kind = \"blue_green\"` to [service.strategy], or remove the key",
                        ),
                    );
                }
            }
            return;
        }
        let Some(preview) = strategy.preview_listen else {
            self.push(
                Finding::new(
                    self.at.span(&format!("{strategy_path}.kind")),
                    "a blue-green strategy needs `preview_listen`",
                    "no preview listener",
                )
                .help("the new version is served there before the switch: add `preview_listen = \"127.0.0.1:8081\"` (a port of its own)"),
            );
            return;
        };
        let span = self.at.span(&format!("{strategy_path}.preview_listen"));
        let owner = listener_at(config, preview).or_else(|| {
            config
                .services
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .find(|(_, s)| {
                    s.strategy.kind == StrategyKind::BlueGreen
                        && s.strategy
                            .preview_listen
                            .is_some_and(|p| rules::listeners_overlap(p, preview))
                })
                .map(|(_, s)| format!("the preview of service `{}`", s.name))
        });
        if let Some(owner) = owner {
            self.push(
                Finding::new(
                    span,
                    format!("`preview_listen` {preview} is taken"),
                    format!("{owner} listens here"),
                )
                .help("give the preview a port of its own"),
            );
        }
    }

    /// A step's `match` and `mirror`; a step must send the canary something.
    fn step_steering(&mut self, step: &StepConfig, path: &str) {
        if step.weight == 0.0 && !step.steers() {
            self.push(
                Finding::new(
                    self.at.span(path),
                    "this step sends the canary no traffic",
                    "no `weight`, `match` or `mirror`",
                )
                .help("give it a `weight` (percent of traffic), a `match = { header = \"x-tester\", value = \"yes\" }` or a `mirror = 20` (percent of stable's requests copied)"),
            );
        }
        if let Some(mirror) = step.mirror
            && !(mirror > 0.0 && mirror <= 100.0)
        {
            self.push(
                Finding::new(
                    self.at.span(&format!("{path}.mirror")),
                    format!("mirror {mirror} is out of range"),
                    "must be above 0 and at most 100",
                )
                .help("`mirror` is the percentage of stable's requests also sent, as a copy, to the canary"),
            );
        }
        let Some(rule) = &step.route_match else {
            return;
        };
        let match_path = format!("{path}.match");
        match (&rule.header, &rule.cookie) {
            (None, None) | (Some(_), Some(_)) => self.push(
                Finding::new(
                    self.at.span(&match_path),
                    "a match needs exactly one of `header` and `cookie`",
                    if rule.header.is_some() { "both given" } else { "neither given" },
                )
                .help("write `match = { header = \"x-tester\", value = \"yes\" }` or `match = { cookie = \"beta\", value = \"on\" }`"),
            ),
            (Some(header), None) if !rules::is_header_name(header) => self.push(
                Finding::new(
                    self.at.span(&format!("{match_path}.header")),
                    format!("invalid header name `{}`", header.escape_debug()),
                    "not a valid HTTP header name",
                )
                .help("use letters, digits and `-`, such as \"x-tester\""),
            ),
            (None, Some(cookie))
                if cookie.is_empty()
                    || cookie
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || "=;,".contains(c)) =>
            {
                self.push(
                    Finding::new(
                        self.at.span(&format!("{match_path}.cookie")),
                        format!("invalid cookie name `{}`", cookie.escape_debug()),
                        "empty, or holds a space, `=`, `;` or `,`",
                    )
                    .help("use the cookie's name as the browser sends it, such as \"beta\""),
                );
            }
            _ => {}
        }
        if rule.value.is_some() && rule.prefix.is_some() {
            self.push(
                Finding::new(
                    self.at.span(&format!("{match_path}.prefix")),
                    "a match takes `value` or `prefix`, not both",
                    "both given",
                )
                .help("`value` must equal the whole value, `prefix` its start; leave both out to match any value"),
            );
        }
    }

    fn analysis(&mut self, analysis: &AnalysisConfig, path: &str) {
        type Bound = fn(f64) -> bool;
        let percent: Bound = |value| (0.0..=100.0).contains(&value);
        let non_negative: Bound = |value| value.is_finite() && value >= 0.0;
        let positive: Bound = |value| value.is_finite() && value > 0.0;
        let rules: [(&str, Option<f64>, Bound, &str); 9] = [
            (
                "max_error_rate",
                Some(analysis.max_error_rate),
                percent,
                "must be a percentage from 0 to 100",
            ),
            (
                "min_success_rate",
                analysis.min_success_rate,
                percent,
                "must be a percentage from 0 to 100",
            ),
            (
                "max_latency_regression",
                Some(analysis.max_latency_regression),
                non_negative,
                "must be a percentage of 0 or more",
            ),
            (
                "allowed_error_increase",
                Some(analysis.allowed_error_increase),
                non_negative,
                "must be a percentage of 0 or more",
            ),
            (
                "latency_tolerance",
                Some(analysis.latency_tolerance),
                non_negative,
                "must be a percentage of 0 or more",
            ),
            (
                "latency_tolerance_ms",
                Some(analysis.latency_tolerance_ms),
                non_negative,
                "must be a number of milliseconds of 0 or more",
            ),
            (
                "error_rate_margin",
                Some(analysis.error_rate_margin),
                percent,
                "must be a number of percentage points from 0 to 100",
            ),
            (
                "max_p95_ms",
                analysis.max_p95_ms,
                positive,
                "must be a number of milliseconds above 0",
            ),
            (
                "max_p99_ms",
                analysis.max_p99_ms,
                positive,
                "must be a number of milliseconds above 0",
            ),
        ];
        for (key, value, valid, label) in rules {
            if let Some(value) = value.filter(|v| !valid(*v)) {
                self.push(Finding::new(
                    self.at.span(&format!("{path}.analysis.{key}")),
                    format!("`{key}` is out of range: {value}"),
                    label,
                ));
            }
        }
        if !(analysis.alpha > 0.0 && analysis.alpha <= 0.5) {
            self.push(
                Finding::new(
                    self.at.span(&format!("{path}.analysis.alpha")),
                    format!("`alpha` is out of range: {}", analysis.alpha),
                    "must be above 0 and at most 0.5",
                )
                .help("alpha is the accepted chance of rolling back a healthy canary; 0.01 or 0.05 are usual"),
            );
        }
        if analysis.require_confidence && analysis.judge == JudgeKind::Threshold {
            self.push(
                Finding::new(
                    self.at.span(&format!("{path}.analysis.require_confidence")),
                    "`require_confidence` needs the sequential judge",
                    "the threshold judge has no confidence sequences to rule a regression out",
                )
                .help("set `judge = \"sequential\"` or remove `require_confidence`"),
            );
        }
    }

    fn autoscale(&mut self, service: &ServiceConfig, autoscale: &AutoscaleConfig, path: &str) {
        let at = format!("{path}.autoscale");
        let BackendConfig::Process(process) = &service.backend else {
            self.push(
                Finding::new(
                    self.at.span(&at),
                    "autoscaling needs the process backend",
                    "a static backend's upstreams are not started by rampart",
                )
                .help(
                    "use `kind = \"process\"` in [service.backend], or remove [service.autoscale]",
                ),
            );
            return;
        };
        if autoscale.min == 0 {
            self.push(
                Finding::new(
                    self.at.span(&format!("{at}.min")),
                    "`min` must be at least 1",
                    "a version cannot be scaled to zero",
                )
                .help("stop a service by removing it; `min = 1` keeps one instance"),
            );
        }
        if autoscale.max < autoscale.min.max(1) {
            self.push(
                Finding::new(
                    self.at.span(&format!("{at}.max")),
                    format!(
                        "`max` ({}) is below `min` ({})",
                        autoscale.max,
                        autoscale.min.max(1)
                    ),
                    "no size fits",
                )
                .help("set max to at least min"),
            );
        } else if process.instances < autoscale.min || process.instances > autoscale.max {
            self.push(
                Finding::new(
                    self.at.span(&format!("{path}.backend.instances")),
                    format!(
                        "`instances` ({}) is outside the autoscale range {}..={}",
                        process.instances, autoscale.min, autoscale.max
                    ),
                    "the size a version starts at",
                )
                .help(format!(
                    "set `instances` in [service.backend] between {} and {}",
                    autoscale.min, autoscale.max
                )),
            );
        }
        if autoscale.targets.is_empty() {
            self.push(
                Finding::new(
                    self.at.span(&format!("{at}.targets")),
                    "no autoscale targets",
                    "empty",
                )
                .help("add at least one, e.g. targets = [{ metric = \"cpu\", value = 70 }]"),
            );
        }
        for (index, target) in autoscale.targets.iter().enumerate() {
            let value_at = format!("{at}.targets.{index}.value");
            if !(target.value.is_finite() && target.value > 0.0) {
                self.push(Finding::new(
                    self.at.span(&value_at),
                    format!(
                        "target value {} for `{}` is out of range",
                        target.value,
                        target.metric.as_str()
                    ),
                    "must be a number above 0",
                ));
            }
            if let Some(first) = autoscale.targets[..index]
                .iter()
                .position(|t| t.metric == target.metric)
            {
                let first_line = self
                    .at
                    .line(&self.at.span(&format!("{at}.targets.{first}.metric")));
                self.push(
                    Finding::new(
                        self.at.span(&format!("{at}.targets.{index}.metric")),
                        format!("metric `{}` has two targets", target.metric.as_str()),
                        format!("already targeted on line {first_line}"),
                    )
                    .help("keep one target per metric"),
                );
            }
        }
        let sync = autoscale.sync.get();
        if sync < std::time::Duration::from_secs(1) || sync > std::time::Duration::from_secs(600) {
            self.push(Finding::new(
                self.at.span(&format!("{at}.sync")),
                format!("`sync` is out of range: {}", autoscale.sync),
                "must be from 1s to 10m",
            ));
        }
        let hour = std::time::Duration::from_secs(3600);
        for (key, window) in [
            (
                "scale_down_stabilization",
                Some(autoscale.scale_down_stabilization),
            ),
            ("scale_up_stabilization", autoscale.scale_up_stabilization),
            ("lead_time", Some(autoscale.lead_time)),
        ] {
            if let Some(window) = window.filter(|w| w.get() > hour) {
                self.push(
                    Finding::new(
                        self.at.span(&format!("{at}.{key}")),
                        format!("`{key}` is out of range: {window}"),
                        "must be at most 1h",
                    )
                    .help("the HPA allows stabilisation windows of up to 3600 s"),
                );
            }
        }
        for (key, rules) in [
            ("scale_up", &autoscale.scale_up),
            ("scale_down", &autoscale.scale_down),
        ] {
            if let Some(rules) = rules {
                self.scaling_rules(rules, &format!("{at}.{key}"), key);
            }
        }
        let cost_at = |key: &str| format!("{at}.{key}");
        if let Some(cost) = autoscale
            .cost_per_instance_hour
            .filter(|c| !(c.is_finite() && *c > 0.0))
        {
            self.push(Finding::new(
                self.at.span(&cost_at("cost_per_instance_hour")),
                format!("`cost_per_instance_hour` is out of range: {cost}"),
                "must be a number above 0",
            ));
        }
        if let Some(budget) = autoscale.max_cost_per_hour {
            match autoscale.cost_per_instance_hour {
                None => self.push(
                    Finding::new(
                        self.at.span(&cost_at("max_cost_per_hour")),
                        "`max_cost_per_hour` needs `cost_per_instance_hour`",
                        "a budget without a price per instance",
                    )
                    .help("add `cost_per_instance_hour = …` in [service.autoscale]"),
                ),
                Some(price) if price > 0.0 && budget.is_finite() && budget < price * f64::from(autoscale.min.max(1)) => {
                    self.push(
                        Finding::new(
                            self.at.span(&cost_at("max_cost_per_hour")),
                            format!(
                                "`max_cost_per_hour` ({budget}) does not pay for `min` ({}) instances at {price} each",
                                autoscale.min.max(1)
                            ),
                            format!("at least {} needed", price * f64::from(autoscale.min.max(1))),
                        )
                        .help("raise the budget or lower min"),
                    )
                }
                _ if !(budget.is_finite() && budget > 0.0) => self.push(Finding::new(
                    self.at.span(&cost_at("max_cost_per_hour")),
                    format!("`max_cost_per_hour` is out of range: {budget}"),
                    "must be a number above 0",
                )),
                _ => {}
            }
        }
    }

    fn scaling_rules(&mut self, rules: &ScalingRulesConfig, at: &str, key: &str) {
        if rules.policies.is_empty() && rules.select != PolicySelect::Disabled {
            self.push(
                Finding::new(self.at.span(&format!("{at}.policies")), format!("`{key}` has no policies"), "empty")
                    .help(format!(
                        "add e.g. policies = [{{ percent = 100, period = \"15s\" }}], or set select = \"disabled\" to never {}",
                        if key == "scale_up" { "scale up" } else { "scale down" }
                    )),
            );
        }
        for (index, policy) in rules.policies.iter().enumerate() {
            let policy_at = format!("{at}.policies.{index}");
            match (policy.instances, policy.percent) {
                (Some(_), Some(_)) | (None, None) => self.push(
                    Finding::new(
                        self.at.span(&policy_at),
                        "a policy needs exactly one of `instances` and `percent`",
                        if policy.instances.is_some() { "both given" } else { "neither given" },
                    )
                    .help("write { instances = 4, period = \"15s\" } or { percent = 100, period = \"15s\" }"),
                ),
                (Some(0), None) | (None, Some(0)) => self.push(Finding::new(
                    self.at.span(&format!(
                        "{policy_at}.{}",
                        if policy.instances.is_some() { "instances" } else { "percent" }
                    )),
                    "a policy must allow a change of at least 1",
                    "0 allows nothing",
                ).help("to forbid scaling in this direction set select = \"disabled\"")),
                _ => {}
            }
            if policy.period.get() > std::time::Duration::from_secs(1800) {
                self.push(Finding::new(
                    self.at.span(&format!("{policy_at}.period")),
                    format!("policy `period` is out of range: {}", policy.period),
                    "must be at most 30m (the HPA's limit)",
                ));
            }
        }
    }

    fn telemetry(&mut self, telemetry: &TelemetryConfig) {
        use std::time::Duration;
        let interval = telemetry.interval.get();
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&interval) {
            self.push(
                Finding::new(
                    self.at.span("telemetry.interval"),
                    format!("`interval` is out of range: {}", telemetry.interval),
                    "must be from 1s to 1m",
                )
                .help("history is summarised per minute, so at least one point a minute is needed; 5s is the default"),
            );
        }
        let retention = telemetry.retention.get();
        let points = retention.as_secs_f64() / interval.as_secs_f64().max(1.0);
        if retention < Duration::from_secs(60) || retention > Duration::from_secs(24 * 3600) {
            self.push(
                Finding::new(
                    self.at.span("telemetry.retention"),
                    format!("`retention` is out of range: {}", telemetry.retention),
                    "must be from 1m to 24h",
                )
                .help("older history is kept as 1-minute summaries (`downsampled_retention`)"),
            );
        } else if points > MAX_FULL_POINTS as f64 {
            self.push(
                Finding::new(
                    self.at.span("telemetry.retention"),
                    format!(
                        "`retention` keeps {points:.0} points per series at this `interval`"
                    ),
                    format!("at most {MAX_FULL_POINTS} points per series are allowed"),
                )
                .help("shorten `retention` or lengthen `interval`; each point costs 16 bytes per series"),
            );
        }
        let downsampled = telemetry.downsampled_retention.get();
        if downsampled < retention || downsampled > Duration::from_secs(7 * 24 * 3600) {
            self.push(
                Finding::new(
                    self.at.span("telemetry.downsampled_retention"),
                    format!(
                        "`downsampled_retention` is out of range: {}",
                        telemetry.downsampled_retention
                    ),
                    format!(
                        "must be from `retention` ({}) to 7 days",
                        telemetry.retention
                    ),
                )
                .help("1-minute summaries cost 24 bytes each per series; 24h is the default"),
            );
        }
        if !(telemetry.warn_error_rate > 0.0 && telemetry.warn_error_rate <= 100.0) {
            self.push(Finding::new(
                self.at.span("telemetry.warn_error_rate"),
                format!(
                    "`warn_error_rate` is out of range: {}",
                    telemetry.warn_error_rate
                ),
                "must be a percentage above 0 and at most 100",
            ));
        }
    }

    fn router(&mut self, router: &RouterConfig, path: &str) {
        let router_path = format!("{path}.router");
        match &router.version_header {
            Some(header) if !rules::is_header_name(header) => {
                self.push(
                    Finding::new(
                        self.at.span(&format!("{router_path}.version_header")),
                        format!("invalid header name `{header}` for `version_header`"),
                        "not a valid HTTP header name",
                    )
                    .help("use letters, digits and `-`, such as \"x-rampart-version\""),
                );
            }
            // A `version_header_from` that is written but malformed has its own error.
            Some(_)
                if router.version_header_from.is_empty()
                    && self
                        .at
                        .find(&format!("{router_path}.version_header_from"))
                        .is_none() =>
            {
                self.push(
                    Finding::new(
                        self.at.span(&format!("{router_path}.version_header")),
                        "`version_header` needs `version_header_from`",
                        "any client could pick the canary with this header",
                    )
                    .help("name the networks that may use it, such as `version_header_from = [\"10.0.0.0/8\", \"127.0.0.1/32\"]`; `[\"0.0.0.0/0\", \"::/0\"]` allows everyone"),
                );
            }
            None if !router.version_header_from.is_empty() => {
                self.push(
                    Finding::new(
                        self.at.span(&format!("{router_path}.version_header_from")),
                        "`version_header_from` without `version_header` has no effect",
                        "the version header is off",
                    )
                    .help("add `version_header = \"x-rampart-version\"` to turn it on, or remove this line"),
                );
            }
            _ => {}
        }
        if let Some(cookie) = router
            .sticky_cookie
            .as_deref()
            .filter(|c| !rules::is_cookie_token(c))
        {
            self.push(
                Finding::new(
                    self.at.span(&format!("{router_path}.sticky_cookie")),
                    format!("invalid cookie name `{cookie}` for `sticky_cookie`"),
                    "not a valid cookie name",
                )
                .help("use letters, digits, `-` and `_` (no spaces, `=`, `;` or quotes), such as \"rampart_version\""),
            );
        }
        let bounded = [
            (
                "header_read_timeout",
                router.header_read_timeout,
                crate::model::MAX_HEADER_READ_TIMEOUT,
            ),
            (
                "idle_timeout",
                router.idle_timeout,
                crate::model::MAX_IDLE_TIMEOUT,
            ),
            (
                "body_read_timeout",
                router.body_read_timeout,
                crate::model::MAX_BODY_READ_TIMEOUT,
            ),
        ];
        for (key, value, max) in bounded {
            if value > max {
                self.push(
                    Finding::new(
                        self.at.span(&format!("{router_path}.{key}")),
                        format!("`{key}` is too long: {value}"),
                        format!("must be at most {max}"),
                    )
                    .help("slow clients would hold connections that long; a few seconds is usual"),
                );
            }
        }
        if router.max_concurrency == Some(0) {
            self.push(
                Finding::new(
                    self.at.span(&format!("{router_path}.max_concurrency")),
                    "`max_concurrency` must be at least 1",
                    "no request could ever be served",
                )
                .help("leave it out for no limit"),
            );
        }
    }

    fn checks(&mut self, service: &ServiceConfig, path: &str) {
        for (index, check) in service.checks.iter().enumerate() {
            let check_path = format!("{path}.check.{index}");
            let name_span = self.at.span(&format!("{check_path}.name"));
            if check.name.trim().is_empty() {
                self.push(
                    Finding::new(
                        name_span.clone(),
                        "empty check name",
                        "a check needs a name",
                    )
                    .help("the name identifies the check in validation reports"),
                );
            } else if let Some(first) = service.checks[..index]
                .iter()
                .position(|c| c.name == check.name)
            {
                let first_line = self
                    .at
                    .line(&self.at.span(&format!("{path}.check.{first}.name")));
                self.push(
                    Finding::new(
                        name_span,
                        format!("duplicate check name `{}` in service `{}`", check.name, service.name),
                        "this name is already taken",
                    )
                    .help(format!("the first check named `{}` is on line {first_line}; check names must be unique within a service", check.name)),
                );
            }
            self.check_kind(check, &check_path);
        }
    }

    fn check_kind(&mut self, check: &CheckConfig, path: &str) {
        let at = |key: &str| format!("{path}.{key}");
        match &check.kind {
            CheckKind::Command { command, .. } if command.trim().is_empty() => {
                self.push(
                    Finding::new(self.at.span(&at("command")), "empty check command", "nothing to run")
                        .help("write a shell command that exits with 0 when the check passes, such as \"make test\""),
                );
            }
            CheckKind::Command { .. } => {}
            CheckKind::Http {
                url,
                method,
                expect_status,
                ..
            } => {
                self.url(url, &at("url"), check);
                if !rules::is_http_method(method) {
                    self.push(
                        Finding::new(
                            self.at.span(&at("method")),
                            format!("invalid HTTP method `{method}` for check `{}`", check.name),
                            "not an HTTP method",
                        )
                        .help("use a method such as \"GET\", \"HEAD\" or \"POST\""),
                    );
                }
                if !(100..=599).contains(expect_status) {
                    self.push(Finding::new(
                        self.at.span(&at("expect_status")),
                        format!("`expect_status` is out of range: {expect_status}"),
                        "must be an HTTP status from 100 to 599",
                    ));
                }
            }
            CheckKind::Tcp { address } => {
                if let Some(problem) = rules::host_port_problem(address) {
                    self.push(
                        Finding::new(
                            self.at.span(&at("address")),
                            format!("invalid address `{address}` for tcp check `{}`", check.name),
                            problem,
                        )
                        .help("write a host and a port, such as \"127.0.0.1:5432\" or \"db.internal:5432\""),
                    );
                }
            }
            CheckKind::Prometheus { url, expect, .. } => {
                self.url(url, &at("url"), check);
                if !rules::is_comparison(expect) {
                    self.push(
                        Finding::new(
                            self.at.span(&at("expect")),
                            format!("invalid `expect` `{expect}` for prometheus check `{}`", check.name),
                            "not a comparison with a number",
                        )
                        .help("write a comparison and a number, such as \"< 0.01\" (operators: <, <=, >, >=, ==, !=)"),
                    );
                }
            }
        }
    }

    fn url(&mut self, url: &str, path: &str, check: &CheckConfig) {
        if let Some(problem) = rules::http_url_problem(url) {
            self.push(
                Finding::new(
                    self.at.span(path),
                    format!(
                        "invalid URL `{url}` for {} check `{}`",
                        check.kind.name(),
                        check.name
                    ),
                    problem,
                )
                .help("write an absolute URL, such as \"http://127.0.0.1:9001/healthz\""),
            );
        }
    }
}

/// How the command would most likely take its port: rampart's own sample app takes
/// an address, most servers a port.
fn port_argument(command: &str) -> &'static str {
    if command.contains("sample-app") {
        "--listen 127.0.0.1:{port}"
    } else {
        "--port {port}"
    }
}

/// Which of rampart's own listeners (server or a service router) `addr` reaches.
fn listener_at(config: &Config, addr: SocketAddr) -> Option<String> {
    if rules::listeners_overlap(addr, config.server.listen) {
        return Some("[server]".into());
    }
    config
        .services
        .iter()
        .find(|service| rules::listeners_overlap(addr, service.listen))
        .map(|service| format!("service `{}`", service.name))
}

/// Explains a clash between different IPs (one of them unspecified).
fn overlap_note(a: SocketAddr, b: SocketAddr) -> String {
    if a.ip() == b.ip() {
        return String::new();
    }
    let wide = if a.ip().is_unspecified() { a } else { b };
    format!(
        ", and {} listens on every local address, so the same port is taken",
        wide.ip()
    )
}
