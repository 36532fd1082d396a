//! `/metrics` families of the latest collection, named like node_exporter's with a
//! `rampart_host_` prefix, plus per-instance families labelled service, version and
//! instance. Read at scrape time from the last collection: a scrape never reads
//! `/proc` itself.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::sampler::{Latest, Telemetry};

type Labels = Vec<(&'static str, String)>;

/// Exports the latest collection of a [`Telemetry`].
#[derive(Clone)]
pub struct TelemetryCollector(pub Telemetry);

impl std::fmt::Debug for TelemetryCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TelemetryCollector")
    }
}

struct CounterValue(f64);

impl EncodeMetric for CounterValue {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.0, None)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// One family: name, help, type and its samples.
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    kind: MetricType,
    samples: Vec<(Labels, f64)>,
}

fn emit(encoder: &mut DescriptorEncoder, family: Family) -> Result<(), std::fmt::Error> {
    let Some((first_labels, _)) = family.samples.first() else {
        return Ok(());
    };
    let mut descriptor = encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
    let encode = |metric: MetricEncoder, value: f64| match family.kind {
        MetricType::Counter => CounterValue(value).encode(metric),
        _ => {
            let mut metric = metric;
            metric.encode_gauge(&value)
        }
    };
    // A family without labels is one sample written bare (`name value`, not `name{} value`).
    if first_labels.is_empty() {
        return encode(descriptor, family.samples[0].1);
    }
    for (labels, value) in &family.samples {
        encode(descriptor.encode_family(labels)?, *value)?;
    }
    Ok(())
}

fn gauge<'a>(name: &'a str, help: &'a str, samples: Vec<(Labels, f64)>) -> Family<'a> {
    Family {
        name,
        help,
        kind: MetricType::Gauge,
        samples,
    }
}

fn counter<'a>(name: &'a str, help: &'a str, samples: Vec<(Labels, f64)>) -> Family<'a> {
    Family {
        name,
        help,
        kind: MetricType::Counter,
        samples,
    }
}

fn one(value: f64) -> Vec<(Labels, f64)> {
    vec![(Vec::new(), value)]
}

fn families(latest: &Latest) -> Vec<Family<'static>> {
    let host = &latest.host;
    let mut cpu = Vec::new();
    for (index, core) in host.cpus.iter().enumerate() {
        for (mode, seconds) in core.modes() {
            cpu.push((
                vec![("cpu", index.to_string()), ("mode", mode.to_string())],
                seconds,
            ));
        }
    }
    let fs_labels = |f: &crate::host::Filesystem| -> Labels {
        vec![
            ("device", f.device.clone()),
            ("fstype", f.fstype.clone()),
            ("mountpoint", f.mountpoint.clone()),
        ]
    };
    let disk = |pick: fn(&crate::host::DiskIo) -> f64| {
        host.disks
            .iter()
            .map(|d| (vec![("device", d.device.clone())], pick(d)))
            .collect::<Vec<_>>()
    };
    let net = |pick: fn(&crate::host::NetworkIo) -> u64| {
        host.networks
            .iter()
            .map(|n| (vec![("device", n.device.clone())], pick(n) as f64))
            .collect::<Vec<_>>()
    };
    let instance_labels = |i: &crate::sampler::InstanceUsage| -> Labels {
        vec![
            ("service", i.service.clone()),
            ("version", i.version.clone()),
            ("instance", i.instance.clone()),
        ]
    };
    let usage = |pick: fn(&crate::process::ProcessUsage) -> f64| {
        latest
            .instances
            .iter()
            .filter_map(|i| i.usage.as_ref().map(|u| (instance_labels(i), pick(u))))
            .collect::<Vec<_>>()
    };
    let m = &host.memory;
    vec![
        counter(
            "rampart_host_cpu_seconds",
            "Seconds the CPUs spent in each mode.",
            cpu,
        ),
        gauge(
            "rampart_host_memory_total_bytes",
            "Memory installed (MemTotal).",
            one(m.total_bytes as f64),
        ),
        gauge(
            "rampart_host_memory_available_bytes",
            "Memory available for new work without swapping (MemAvailable).",
            one(m.available_bytes as f64),
        ),
        gauge(
            "rampart_host_memory_free_bytes",
            "Memory unused (MemFree).",
            one(m.free_bytes as f64),
        ),
        gauge(
            "rampart_host_memory_cached_bytes",
            "Page cache (Cached).",
            one(m.cached_bytes as f64),
        ),
        gauge(
            "rampart_host_memory_buffers_bytes",
            "Block device buffers (Buffers).",
            one(m.buffers_bytes as f64),
        ),
        gauge(
            "rampart_host_swap_total_bytes",
            "Swap space (SwapTotal).",
            one(m.swap_total_bytes as f64),
        ),
        gauge(
            "rampart_host_swap_free_bytes",
            "Swap space unused (SwapFree).",
            one(m.swap_free_bytes as f64),
        ),
        gauge(
            "rampart_host_load1",
            "1-minute load average.",
            one(host.load1),
        ),
        gauge(
            "rampart_host_load5",
            "5-minute load average.",
            one(host.load5),
        ),
        gauge(
            "rampart_host_load15",
            "15-minute load average.",
            one(host.load15),
        ),
        gauge(
            "rampart_host_processes",
            "Processes on the host.",
            one(host.processes as f64),
        ),
        gauge(
            "rampart_host_procs_running",
            "Processes in runnable state.",
            one(host.procs_running as f64),
        ),
        gauge(
            "rampart_host_procs_blocked",
            "Processes blocked waiting for I/O.",
            one(host.procs_blocked as f64),
        ),
        gauge(
            "rampart_host_filesystem_size_bytes",
            "Filesystem size.",
            host.filesystems
                .iter()
                .map(|f| (fs_labels(f), f.size_bytes as f64))
                .collect(),
        ),
        gauge(
            "rampart_host_filesystem_avail_bytes",
            "Filesystem space available to unprivileged users.",
            host.filesystems
                .iter()
                .map(|f| (fs_labels(f), f.avail_bytes as f64))
                .collect(),
        ),
        gauge(
            "rampart_host_filesystem_free_bytes",
            "Filesystem free space.",
            host.filesystems
                .iter()
                .map(|f| (fs_labels(f), f.free_bytes as f64))
                .collect(),
        ),
        counter(
            "rampart_host_disk_read_bytes",
            "Bytes read from the disk.",
            disk(|d| d.read_bytes as f64),
        ),
        counter(
            "rampart_host_disk_written_bytes",
            "Bytes written to the disk.",
            disk(|d| d.written_bytes as f64),
        ),
        counter(
            "rampart_host_disk_reads_completed",
            "Reads completed.",
            disk(|d| d.reads_completed as f64),
        ),
        counter(
            "rampart_host_disk_writes_completed",
            "Writes completed.",
            disk(|d| d.writes_completed as f64),
        ),
        counter(
            "rampart_host_disk_io_time_seconds",
            "Seconds the disk had I/O in progress.",
            disk(|d| d.io_time_seconds),
        ),
        counter(
            "rampart_host_network_receive_bytes",
            "Bytes received by the interface.",
            net(|n| n.receive_bytes),
        ),
        counter(
            "rampart_host_network_transmit_bytes",
            "Bytes sent by the interface.",
            net(|n| n.transmit_bytes),
        ),
        counter(
            "rampart_host_network_receive_packets",
            "Packets received by the interface.",
            net(|n| n.receive_packets),
        ),
        counter(
            "rampart_host_network_transmit_packets",
            "Packets sent by the interface.",
            net(|n| n.transmit_packets),
        ),
        counter(
            "rampart_host_network_receive_errs",
            "Receive errors on the interface.",
            net(|n| n.receive_errors),
        ),
        counter(
            "rampart_host_network_transmit_errs",
            "Transmit errors on the interface.",
            net(|n| n.transmit_errors),
        ),
        gauge(
            "rampart_host_tcp_connection_states",
            "TCP sockets (IPv4 and IPv6) by state; read every 30 s at the default interval.",
            host.tcp_states
                .iter()
                .flatten()
                .map(|(state, count)| (vec![("state", (*state).to_string())], *count as f64))
                .collect(),
        ),
        counter(
            "rampart_instance_cpu_seconds",
            "CPU seconds (user + system) of the instance's live processes.",
            usage(|u| u.cpu_seconds),
        ),
        gauge(
            "rampart_instance_resident_memory_bytes",
            "Resident memory of the instance's processes.",
            usage(|u| u.rss_bytes as f64),
        ),
        gauge(
            "rampart_instance_open_fds",
            "Open file descriptors of the instance's processes.",
            usage(|u| u.open_fds as f64),
        ),
        gauge(
            "rampart_instance_processes",
            "Processes in the instance's tree.",
            usage(|u| u.processes as f64),
        ),
        gauge(
            "rampart_instance_cpu_percent",
            "Percent of one core the instance used since the previous collection.",
            latest
                .instances
                .iter()
                .filter_map(|i| i.cpu_percent.map(|p| (instance_labels(i), p)))
                .collect(),
        ),
        counter(
            "rampart_instance_restarts",
            "Restarts of the instance after a crash.",
            latest
                .instances
                .iter()
                .map(|i| (instance_labels(i), f64::from(i.restarts)))
                .collect(),
        ),
        gauge(
            "rampart_instance_up",
            "1 when the instance is ready, 0 otherwise (starting, crashed, restarting, stopping).",
            latest
                .instances
                .iter()
                .map(|i| {
                    (
                        instance_labels(i),
                        if i.state == "ready" { 1.0 } else { 0.0 },
                    )
                })
                .collect(),
        ),
        gauge(
            "rampart_telemetry_collection_seconds",
            "How long the latest host and instance collection took.",
            one(latest.collection_seconds),
        ),
        counter(
            "rampart_telemetry_collection_cpu_seconds",
            "CPU seconds all collections used (reading /proc and the services, updating the series).",
            one(latest.collection_cpu_seconds_total),
        ),
    ]
}

impl Collector for TelemetryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(latest) = self.0.latest() else {
            return Ok(());
        };
        for family in families(&latest) {
            emit(&mut encoder, family)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prometheus_client::registry::Registry;
    use rampart_core::SystemClock;
    use rampart_core::series::Retention;

    use super::*;
    use crate::sampler::Settings;
    use crate::source::NoServices;

    #[test]
    fn host_families_are_named_like_node_exporter_with_a_rampart_prefix() {
        let telemetry = Telemetry::new(
            Settings {
                retention: Retention::default(),
            },
            Arc::new(NoServices),
            Arc::new(SystemClock),
        );
        let mut registry = Registry::default();
        registry.register_collector(Box::new(TelemetryCollector(telemetry.clone())));
        assert_eq!(
            crate::render(&registry).expect("render"),
            "",
            "nothing before the first collection"
        );
        telemetry.collect();
        let text = crate::render(&registry).expect("render");
        for needle in [
            "# TYPE rampart_host_cpu_seconds_total counter\n",
            "rampart_host_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} ",
            "# TYPE rampart_host_memory_available_bytes gauge\n",
            "rampart_host_load1 ",
            "rampart_host_filesystem_avail_bytes{device=",
            "rampart_host_network_receive_bytes_total{device=\"lo\"} ",
            "rampart_host_tcp_connection_states{state=",
            "rampart_telemetry_collection_seconds ",
            "\nrampart_telemetry_collection_cpu_seconds_total ",
            "\nrampart_host_load1 ",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
