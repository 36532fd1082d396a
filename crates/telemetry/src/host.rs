//! Host metrics read from `/proc` through the `procfs` crate, and filesystem space
//! through `statvfs(3)`.
//!
//! Why `procfs` and not `sysinfo`: only `/proc/stat` gives CPU seconds per core *by
//! mode* (what `rampart_host_cpu_seconds_total{cpu,mode}` needs), and `procfs` reads
//! each file on its own. Measured on the 2-vCPU build host (release build, 200 rounds,
//! other builds running): procfs kernel stats 32 µs, meminfo 21 µs, loadavg 7 µs,
//! diskstats 55 µs, net/dev 16 µs, mountinfo + statvfs 206 µs; sysinfo 0.37 CPU
//! (usage only, no modes) 216 µs, networks 685 µs, disks 138 µs, all processes 7.3 ms.
//!
//! TCP connections by state are the exception: every way to count them (the
//! `/proc/net/tcp{,6}` text or a netlink `sock_diag` dump) walks the kernel's whole
//! established-connection hash (262,144 buckets here), 6–16 ms whatever the number of
//! sockets. They are read every [`TCP_STATES_EVERY`]th collection, not every time.

use std::collections::BTreeMap;
use std::path::Path;

use procfs::{Current, CurrentSI};
use serde::Serialize;

/// Read TCP states at one collection in this many (every 30 s at the default 5 s).
pub const TCP_STATES_EVERY: u64 = 6;

/// CPU time by mode, in seconds since boot.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuSeconds {
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub idle: f64,
    pub iowait: f64,
    pub irq: f64,
    pub softirq: f64,
    pub steal: f64,
}

impl CpuSeconds {
    /// `(mode, seconds)`, node_exporter's mode names.
    pub fn modes(&self) -> [(&'static str, f64); 8] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("iowait", self.iowait),
            ("irq", self.irq),
            ("softirq", self.softirq),
            ("steal", self.steal),
        ]
    }

    pub fn total(&self) -> f64 {
        self.modes().iter().map(|(_, s)| s).sum()
    }

    /// Seconds not idle (iowait counts as idle: the CPU could run something else).
    pub fn busy(&self) -> f64 {
        self.total() - self.idle - self.iowait
    }

    fn from_procfs(cpu: &procfs::CpuTime) -> Self {
        let tps = procfs::ticks_per_second().max(1) as f64;
        let s = |ticks: u64| ticks as f64 / tps;
        Self {
            user: s(cpu.user),
            nice: s(cpu.nice),
            system: s(cpu.system),
            idle: s(cpu.idle),
            iowait: s(cpu.iowait.unwrap_or(0)),
            irq: s(cpu.irq.unwrap_or(0)),
            softirq: s(cpu.softirq.unwrap_or(0)),
            steal: s(cpu.steal.unwrap_or(0)),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Memory {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub free_bytes: u64,
    pub buffers_bytes: u64,
    pub cached_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Filesystem {
    pub device: String,
    pub fstype: String,
    pub mountpoint: String,
    pub size_bytes: u64,
    /// Space an unprivileged user may still use.
    pub avail_bytes: u64,
    pub free_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskIo {
    pub device: String,
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub reads_completed: u64,
    pub writes_completed: u64,
    /// Seconds the device had I/O in progress (its utilisation, as a counter).
    pub io_time_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkIo {
    pub device: String,
    pub receive_bytes: u64,
    pub transmit_bytes: u64,
    pub receive_packets: u64,
    pub transmit_packets: u64,
    pub receive_errors: u64,
    pub transmit_errors: u64,
}

/// One reading of the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostSnapshot {
    /// Per core, in core order.
    pub cpus: Vec<CpuSeconds>,
    pub memory: Memory,
    pub filesystems: Vec<Filesystem>,
    pub disks: Vec<DiskIo>,
    pub networks: Vec<NetworkIo>,
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    /// Processes (not threads) on the host.
    pub processes: u64,
    pub procs_running: u64,
    pub procs_blocked: u64,
    /// TCP sockets (IPv4 and IPv6) by state, lowercase node_exporter names; `None`
    /// until first read.
    pub tcp_states: Option<BTreeMap<&'static str, u64>>,
}

impl HostSnapshot {
    /// All cores together.
    pub fn cpu_total(&self) -> CpuSeconds {
        let mut total = CpuSeconds::default();
        for cpu in &self.cpus {
            total.user += cpu.user;
            total.nice += cpu.nice;
            total.system += cpu.system;
            total.idle += cpu.idle;
            total.iowait += cpu.iowait;
            total.irq += cpu.irq;
            total.softirq += cpu.softirq;
            total.steal += cpu.steal;
        }
        total
    }
}

/// Reads the host; keeps the last TCP states between their (rarer) readings.
#[derive(Debug, Default)]
pub struct HostReader {
    collections: u64,
    tcp_states: Option<BTreeMap<&'static str, u64>>,
}

impl HostReader {
    /// One reading. A part that cannot be read is left empty and logged, so one
    /// unreadable file (a container without `/proc/diskstats`) costs only its part.
    pub fn read(&mut self) -> HostSnapshot {
        let mut host = HostSnapshot::default();
        match procfs::KernelStats::current() {
            Ok(stats) => {
                host.cpus = stats.cpu_time.iter().map(CpuSeconds::from_procfs).collect();
                host.procs_running = stats.procs_running.unwrap_or(0).into();
                host.procs_blocked = stats.procs_blocked.unwrap_or(0).into();
            }
            Err(e) => tracing::debug!(error = %e, "cannot read /proc/stat"),
        }
        match procfs::Meminfo::current() {
            Ok(m) => {
                host.memory = Memory {
                    total_bytes: m.mem_total,
                    // Kernels before 3.14 lack MemAvailable; free + cache approximates it.
                    available_bytes: m.mem_available.unwrap_or(m.mem_free + m.cached + m.buffers),
                    free_bytes: m.mem_free,
                    buffers_bytes: m.buffers,
                    cached_bytes: m.cached,
                    swap_total_bytes: m.swap_total,
                    swap_free_bytes: m.swap_free,
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read /proc/meminfo"),
        }
        match procfs::LoadAverage::current() {
            Ok(load) => {
                host.load1 = load.one.into();
                host.load5 = load.five.into();
                host.load15 = load.fifteen.into();
            }
            Err(e) => tracing::debug!(error = %e, "cannot read /proc/loadavg"),
        }
        host.filesystems = filesystems();
        host.disks = disks();
        host.networks = networks();
        host.processes = procfs::process::all_processes()
            .map(|all| all.count() as u64)
            .unwrap_or(0);
        if self.collections.is_multiple_of(TCP_STATES_EVERY) {
            self.tcp_states = tcp_states();
        }
        self.collections += 1;
        host.tcp_states = self.tcp_states.clone();
        host
    }
}

/// Pseudo and overlay filesystems whose space means nothing (node_exporter's list).
const IGNORED_FSTYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
];

fn ignored_mountpoint(path: &str) -> bool {
    [
        "/dev",
        "/proc",
        "/sys",
        "/run/credentials/",
        "/var/lib/docker/",
    ]
    .iter()
    .any(|prefix| {
        path == prefix.trim_end_matches('/')
            || path.starts_with(&format!("{}/", prefix.trim_end_matches('/')))
    })
}

fn filesystems() -> Vec<Filesystem> {
    let mounts = match procfs::process::Process::myself().and_then(|me| me.mountinfo()) {
        Ok(mounts) => mounts,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read mountinfo");
            return Vec::new();
        }
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for mount in mounts {
        let mountpoint = mount.mount_point.to_string_lossy().into_owned();
        // A container's root is an overlay whose space is the data dir's: keep it.
        let ignored_type = IGNORED_FSTYPES.contains(&mount.fs_type.as_str()) && mountpoint != "/";
        if ignored_type || ignored_mountpoint(&mountpoint) || !seen.insert(mountpoint.clone()) {
            continue;
        }
        // statvfs on a dead network mount can block; collection runs on a blocking
        // thread, so only telemetry waits.
        let Ok(stat) = nix::sys::statvfs::statvfs(Path::new(&mountpoint)) else {
            continue;
        };
        let block = stat.fragment_size();
        out.push(Filesystem {
            device: mount.mount_source.unwrap_or_else(|| "none".into()),
            fstype: mount.fs_type,
            mountpoint,
            size_bytes: stat.blocks() * block,
            avail_bytes: stat.blocks_available() * block,
            free_bytes: stat.blocks_free() * block,
        });
    }
    out
}

/// Partitions and virtual devices are left out so a disk's I/O is counted once
/// (node_exporter's `^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`).
pub fn is_ignored_disk(name: &str) -> bool {
    let digits = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if digits.len() == name.len() {
        return false;
    }
    let stem = digits;
    if ["ram", "loop", "fd"].contains(&stem) {
        return true;
    }
    let bytes = stem.as_bytes();
    let last_is_letter = bytes.last().is_some_and(u8::is_ascii_lowercase);
    for prefix in ["hd", "sd", "vd", "xvd"] {
        if last_is_letter && stem.len() == prefix.len() + 1 && stem.starts_with(prefix) {
            return true;
        }
    }
    // nvme0n1p2: a partition of nvme0n1.
    if let Some(rest) = stem.strip_prefix("nvme")
        && let Some(rest) = rest.strip_suffix('p')
        && let Some((controller, namespace)) = rest.split_once('n')
    {
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        return numeric(controller) && numeric(namespace);
    }
    false
}

fn disks() -> Vec<DiskIo> {
    const SECTOR: u64 = 512; // /proc/diskstats counts 512-byte sectors on every device
    match procfs::diskstats() {
        Ok(stats) => stats
            .into_iter()
            .filter(|d| !is_ignored_disk(&d.name))
            .map(|d| DiskIo {
                read_bytes: d.sectors_read * SECTOR,
                written_bytes: d.sectors_written * SECTOR,
                reads_completed: d.reads,
                writes_completed: d.writes,
                io_time_seconds: d.time_in_progress as f64 / 1000.0,
                device: d.name,
            })
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read /proc/diskstats");
            Vec::new()
        }
    }
}

fn networks() -> Vec<NetworkIo> {
    match procfs::net::dev_status() {
        Ok(devices) => {
            let mut out: Vec<NetworkIo> = devices
                .into_values()
                .map(|d| NetworkIo {
                    receive_bytes: d.recv_bytes,
                    transmit_bytes: d.sent_bytes,
                    receive_packets: d.recv_packets,
                    transmit_packets: d.sent_packets,
                    receive_errors: d.recv_errs,
                    transmit_errors: d.sent_errs,
                    device: d.name,
                })
                .collect();
            out.sort_by(|a, b| a.device.cmp(&b.device));
            out
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot read /proc/net/dev");
            Vec::new()
        }
    }
}

fn tcp_state_name(state: &procfs::net::TcpState) -> &'static str {
    use procfs::net::TcpState::*;
    match state {
        Established => "established",
        SynSent => "syn_sent",
        SynRecv | NewSynRecv => "syn_recv",
        FinWait1 => "fin_wait1",
        FinWait2 => "fin_wait2",
        TimeWait => "time_wait",
        Close => "close",
        CloseWait => "close_wait",
        LastAck => "last_ack",
        Listen => "listen",
        Closing => "closing",
    }
}

fn tcp_states() -> Option<BTreeMap<&'static str, u64>> {
    let mut counts = BTreeMap::new();
    let mut any = false;
    for table in [procfs::net::tcp(), procfs::net::tcp6()] {
        match table {
            Ok(entries) => {
                any = true;
                for entry in entries {
                    *counts.entry(tcp_state_name(&entry.state)).or_insert(0) += 1;
                }
            }
            // No IPv6 on the host is normal.
            Err(e) => tracing::debug!(error = %e, "cannot read a /proc/net/tcp table"),
        }
    }
    any.then_some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_virtual_disks_are_ignored_whole_disks_are_kept() {
        for name in ["sda1", "vda2", "xvda1", "nvme0n1p1", "loop3", "ram0", "fd0"] {
            assert!(is_ignored_disk(name), "{name}");
        }
        for name in ["sda", "vda", "nvme0n1", "dm-0", "md0", "sr0", "mmcblk0"] {
            assert!(!is_ignored_disk(name), "{name}");
        }
    }

    #[test]
    fn pseudo_mountpoints_are_ignored() {
        assert!(ignored_mountpoint("/proc"));
        assert!(ignored_mountpoint("/sys/fs/cgroup"));
        assert!(ignored_mountpoint("/run/credentials/x.service"));
        assert!(!ignored_mountpoint("/"));
        assert!(!ignored_mountpoint("/system"));
        assert!(!ignored_mountpoint("/srv"));
    }

    #[test]
    fn reading_this_host_gives_cores_memory_load_and_the_root_filesystem() {
        let mut reader = HostReader::default();
        let first = reader.read();
        assert!(!first.cpus.is_empty());
        assert!(first.cpu_total().total() > 0.0);
        assert!(first.memory.total_bytes > 0);
        assert!(first.memory.available_bytes <= first.memory.total_bytes);
        assert!(first.processes > 0);
        assert!(first.networks.iter().any(|n| n.device == "lo"));
        assert!(first.tcp_states.is_some(), "read at the first collection");
        assert!(
            first.filesystems.iter().any(|f| f.size_bytes > 0),
            "{:?}",
            first.filesystems
        );
        let second = reader.read();
        assert!(second.cpu_total().total() >= first.cpu_total().total());
        assert_eq!(second.tcp_states.is_some(), first.tcp_states.is_some());
    }
}
