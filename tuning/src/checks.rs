//! The checks behind `ringtail tune`: each reads the machine through [`System`] and says
//! what it found, why it matters to a thread-per-core io_uring broker, and how to fix it.

use crate::block::{self, Disks, Mount};
use crate::finding::{Finding, Status, Write};
use crate::system::{self, System};
use std::path::{Path, PathBuf};

/// Memory each shard must be able to lock: glommio refuses to start below this.
pub const MEMLOCK_PER_SHARD_BYTES_MIN: u64 = 512 * 1024;
/// `vm.swappiness` above this lets the kernel swap out broker memory under page-cache pressure.
pub const SWAPPINESS_MAX: u64 = 10;
/// The value `--apply` sets `vm.swappiness` to.
pub const SWAPPINESS_APPLY: u64 = 1;
/// `fs.aio-max-nr` below this starves libaio users (fio, glommio's fallbacks).
pub const AIO_MAX_NR_MIN: u64 = 65536;
/// `nomerges` = 2 turns off all merge attempts: the broker already writes large aligned blocks.
pub const NOMERGES_WANTED: &str = "2";
/// Interrupt lines examined at most, so a hostile `/proc/interrupts` cannot run away.
const INTERRUPT_LINES_MAX: usize = 4096;

/// Where the checks run: virtual machine, container, or bare metal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Environment {
    /// The hypervisor vendor if this is a virtual machine (`QEMU`, `KVM`, `Amazon EC2`).
    pub vm: Option<String>,
    /// The container runtime if in a container (`docker`, `kubernetes`).
    pub container: Option<String>,
}

impl Environment {
    /// Reads the DMI vendor, CPU flags and PID 1's cgroup and environment.
    pub fn detect(system: &System) -> Environment {
        let vm_vendors = [
            "QEMU",
            "KVM",
            "VMware",
            "Microsoft Corporation",
            "Xen",
            "Amazon EC2",
            "Google",
            "innotek",
            "Parallels",
            "BHYVE",
            "OpenStack",
        ];
        let vendor = system.read("/sys/class/dmi/id/sys_vendor").unwrap_or_default();
        let product = system.read("/sys/class/dmi/id/product_name").unwrap_or_default();
        let vm =
            vm_vendors.iter().find(|v| vendor.contains(*v) || product.contains(*v)).map(|v| v.to_string()).or_else(
                || {
                    let cpuinfo = system.read("/proc/cpuinfo")?;
                    cpuinfo
                        .lines()
                        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
                        .then(|| "unknown hypervisor".to_string())
                },
            );
        let cgroup = system.read("/proc/1/cgroup").unwrap_or_default();
        let environ = system.read("/proc/1/environ").unwrap_or_default();
        let container = if system.exists("/.dockerenv") || cgroup.contains("docker") {
            Some("docker".to_string())
        } else if cgroup.contains("kubepods") {
            Some("kubernetes".to_string())
        } else if system.exists("/run/.containerenv") || cgroup.contains("libpod") {
            Some("podman".to_string())
        } else if cgroup.contains("lxc") {
            Some("lxc".to_string())
        } else {
            environ.split('\0').find_map(|v| v.strip_prefix("container=")).map(|v| v.to_string())
        };
        Environment { vm, container }
    }

    /// Why a sysfs or procfs write may be refused here, if this environment explains it.
    pub fn refusal_reason(&self) -> Option<String> {
        match (&self.container, &self.vm) {
            (Some(c), _) => {
                Some(format!("inside a {c} container /sys and /proc/sys are usually read-only; change it on the host"))
            }
            (None, Some(v)) => {
                Some(format!("in a {v} virtual machine the hypervisor owns this setting; change it on the host"))
            }
            (None, None) => None,
        }
    }
}

/// Everything the checks need to know.
#[derive(Debug, Clone)]
pub struct Context {
    /// The machine.
    pub system: System,
    /// The broker's data directory, absolute.
    pub data_dir: PathBuf,
    /// Shards the broker runs; shard `i` runs on CPU `i`.
    pub shards: usize,
    /// Online CPUs.
    pub cpus: Vec<usize>,
    /// VM or container.
    pub environment: Environment,
    /// The broker's free-space watermarks, reported beside the file system's free space.
    pub space: SpaceWatermarks,
}

/// The broker's free-space watermarks as configured (each a size and a percentage of the file
/// system; the larger applies), for `ringtail tune` to report against the free space.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpaceWatermarks {
    pub low_bytes: u64,
    pub low_percent: u8,
    pub high_bytes: u64,
    pub high_percent: u8,
}

impl Context {
    /// Gathers the context; `shards = None` means one shard per online CPU.
    pub fn new(system: System, data_dir: &Path, shards: Option<usize>) -> Context {
        let cpus = system.read("/sys/devices/system/cpu/online").map(|s| parse_cpu_list(&s)).unwrap_or_default();
        let cpus = if cpus.is_empty() {
            (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
        } else {
            cpus
        };
        let shards = shards.unwrap_or(cpus.len()).max(1);
        let data_dir = system::resolve_dir(&system, data_dir);
        let environment = Environment::detect(&system);
        Context { system, data_dir, shards, cpus, environment, space: SpaceWatermarks::default() }
    }

    /// CPUs that run shards.
    pub fn shard_cpus(&self) -> Vec<usize> {
        self.cpus.iter().copied().take(self.shards).collect()
    }
}

/// Parses a kernel CPU list (`0-3,8,10-11`).
pub fn parse_cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (low, high) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(low), Ok(high)) = (low.trim().parse::<usize>(), high.trim().parse::<usize>()) {
            // A CPU list names at most a few thousand CPUs; cap the range so bad input cannot exhaust memory.
            cpus.extend(low..=high.min(low + 65536));
        }
    }
    cpus
}

/// Formats CPUs as a kernel CPU list (`0-3,8`).
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    parts.join(",")
}

/// The selected value of a sysfs choice file (`none [mq-deadline] kyber` -> `mq-deadline`).
fn selected(choices: &str) -> Option<&str> {
    let start = choices.find('[')?;
    let end = choices[start..].find(']')? + start;
    Some(&choices[start + 1..end])
}

/// Runs every check.
pub fn run_all(ctx: &Context) -> Vec<Finding> {
    let mut findings = vec![environment(ctx)];
    findings.extend(cpu_governor(ctx));
    findings.push(irqbalance(ctx));
    let mount = block::mount_of(&ctx.system, &ctx.data_dir);
    let disks = mount.as_ref().map(|m| block::disks_of(&ctx.system, m)).unwrap_or_default();
    findings.push(filesystem(ctx, mount.as_ref(), &disks));
    for disk in &disks.disks {
        findings.extend(disk_queue(ctx, disk));
    }
    findings.extend(irq_affinity(ctx, &disks));
    findings.push(memlock(ctx));
    findings.push(aio_max_nr(ctx));
    findings.push(swappiness(ctx));
    findings.push(transparent_hugepages(ctx));
    findings.push(clocksource(ctx));
    findings.push(io_uring(ctx));
    if ctx.system.is_real() {
        findings.push(o_direct(ctx));
        findings.push(free_space(ctx));
    }
    findings
}

fn environment(ctx: &Context) -> Finding {
    let env = &ctx.environment;
    let found = match (&env.vm, &env.container) {
        (None, None) => "bare metal (no hypervisor or container detected)".to_string(),
        (Some(v), None) => format!("virtual machine ({v})"),
        (None, Some(c)) => format!("container ({c})"),
        (Some(v), Some(c)) => format!("container ({c}) in a virtual machine ({v})"),
    };
    let why = if env.vm.is_some() || env.container.is_some() {
        "the hypervisor or container host owns CPU frequency, interrupt routing and often the disk queue; \
         findings it controls are reported, and changes it refuses are explained, not treated as errors"
    } else {
        "every setting below can be changed on this machine"
    };
    Finding::new("environment", Status::Info, found, why)
}

fn cpu_governor(ctx: &Context) -> Vec<Finding> {
    let why = "a shard's core spins between I/O completions; `powersave`/`ondemand`/`schedutil` clock it down \
               and add wake-up latency to every request";
    let mut writes = Vec::new();
    let mut seen = Vec::new();
    for cpu in &ctx.cpus {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor");
        if let Some(governor) = ctx.system.read(&path) {
            if governor != "performance" {
                writes.push(Write { path, value: "performance".to_string(), old: governor.clone() });
            }
            if !seen.contains(&governor) {
                seen.push(governor);
            }
        }
    }
    if seen.is_empty() {
        let found = match &ctx.environment.vm {
            Some(v) => format!("no cpufreq governor exposed; the hypervisor ({v}) sets the CPU frequency"),
            None => "no cpufreq governor exposed (cpufreq driver not loaded)".to_string(),
        };
        return vec![Finding::new("cpu.governor", Status::Info, found, why)];
    }
    if writes.is_empty() {
        return vec![Finding::new("cpu.governor", Status::Ok, "performance on every CPU", why)];
    }
    let found = format!(
        "{} of {} CPUs not on `performance` (governors seen: {})",
        writes.len(),
        ctx.cpus.len(),
        seen.join(", ")
    );
    vec![Finding::new("cpu.governor", Status::Warn, found, why).with_fix(
        "set the `performance` governor on every CPU (not kept across reboots; use cpupower or tuned to persist)",
        writes,
    )]
}

fn irqbalance(ctx: &Context) -> Finding {
    let why = "irqbalance moves NIC and disk interrupts onto shard cores every few seconds, undoing any pinning \
               and stealing time from the shard that owns the core";
    let running = ctx
        .system
        .list("/proc")
        .iter()
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        .find(|pid| ctx.system.read(&format!("/proc/{pid}/comm")).as_deref() == Some("irqbalance"))
        .cloned();
    match running {
        Some(pid) => Finding::new("irqbalance", Status::Warn, format!("irqbalance is running (pid {pid})"), why)
            .with_fix(
                "stop it: `systemctl disable --now irqbalance` (undo: `systemctl enable --now irqbalance`)",
                Vec::new(),
            ),
        None => Finding::new("irqbalance", Status::Ok, "irqbalance is not running", why),
    }
}

fn filesystem(ctx: &Context, mount: Option<&Mount>, disks: &Disks) -> Finding {
    let why = "the log writes with O_DIRECT and relies on fdatasync; ext4 and xfs do both well, \
               overlay/tmpfs either refuse O_DIRECT or lose data on power loss";
    let dir = ctx.data_dir.display();
    let Some(mount) = mount else {
        return Finding::new(
            "filesystem",
            Status::Unknown,
            format!("no mount found for {dir} in /proc/self/mountinfo"),
            why,
        );
    };
    let mut found = format!("{dir} is on {} ({}) mounted at {}", mount.fs_type, mount.source, mount.mount_point);
    if !disks.disks.is_empty() {
        found.push_str(&format!(", disks: {}", disks.disks.join(", ")));
    }
    if !disks.path.is_empty() {
        found.push_str(&format!(" ({})", disks.path.join("; ")));
    }
    let status = match mount.fs_type.as_str() {
        "ext4" | "xfs" => Status::Ok,
        "tmpfs" | "ramfs" | "overlay" | "aufs" | "nfs" | "nfs4" | "fuse" | "9p" | "virtiofs" => Status::Warn,
        _ => Status::Info,
    };
    let finding = Finding::new("filesystem", status, found, why);
    if status == Status::Warn {
        finding.with_fix(
            "put the data directory on an ext4 or xfs file system on a local disk (a volume, not the container layer)",
            Vec::new(),
        )
    } else {
        finding
    }
}

fn disk_queue(ctx: &Context, disk: &str) -> Vec<Finding> {
    let sys = &ctx.system;
    let queue = format!("/sys/block/{disk}/queue");
    // virtio disks report rotational=1 whatever backs them; NVMe never rotates.
    let paravirtual = disk.starts_with("vd")
        || disk.starts_with("nvme")
        || sys.link_name(&format!("/sys/block/{disk}/device")).is_some_and(|d| d.starts_with("virtio"));
    let rotational = !paravirtual && sys.read(&format!("{queue}/rotational")).as_deref() == Some("1");
    let mut findings = Vec::new();

    let scheduler_path = format!("{queue}/scheduler");
    let why = "the broker issues large sequential writes from one ring per core; on NVMe and virtio disks an \
               I/O scheduler only adds CPU time and latency, `none` passes requests straight through";
    let id = format!("disk.{disk}.scheduler");
    match sys.read(&scheduler_path) {
        None => findings.push(Finding::new(id, Status::Unknown, format!("{scheduler_path} not readable"), why)),
        Some(choices) => {
            let current = selected(&choices).unwrap_or(choices.as_str()).to_string();
            let has_none = choices.split_whitespace().any(|c| c == "none" || c == "[none]");
            if current == "none" {
                findings.push(Finding::new(id, Status::Ok, format!("{disk}: scheduler none"), why));
            } else if rotational {
                findings.push(Finding::new(
                    id,
                    Status::Info,
                    format!("{disk}: scheduler {current} on a rotational disk"),
                    "a spinning disk benefits from a scheduler that sorts requests; keep it",
                ));
            } else if has_none {
                findings.push(
                    Finding::new(id, Status::Warn, format!("{disk}: scheduler {current} (available: {choices})"), why)
                        .with_fix(
                            format!("use `none` on {disk} (not kept across reboots; use a udev rule to persist)"),
                            vec![Write { path: scheduler_path, value: "none".to_string(), old: current }],
                        ),
                );
            } else {
                findings.push(Finding::new(
                    id,
                    Status::Info,
                    format!("{disk}: scheduler {current}; `none` not offered ({choices})"),
                    why,
                ));
            }
        }
    }

    let nomerges_path = format!("{queue}/nomerges");
    let why = "the broker already writes large aligned blocks; merge attempts cost CPU on the shard core for nothing";
    let id = format!("disk.{disk}.nomerges");
    match sys.read(&nomerges_path) {
        None => findings.push(Finding::new(id, Status::Unknown, format!("{nomerges_path} not readable"), why)),
        Some(v) if v == NOMERGES_WANTED => {
            findings.push(Finding::new(id, Status::Ok, format!("{disk}: nomerges 2"), why))
        }
        Some(v) => {
            findings.push(Finding::new(id, Status::Warn, format!("{disk}: nomerges {v} (want 2)"), why).with_fix(
                format!("set nomerges to 2 on {disk} (not kept across reboots)"),
                vec![Write { path: nomerges_path, value: NOMERGES_WANTED.to_string(), old: v }],
            ))
        }
    }

    let cache_path = format!("{queue}/write_cache");
    let id = format!("disk.{disk}.write_cache");
    match sys.read(&cache_path) {
        None => findings.push(Finding::new(id, Status::Unknown, format!("{cache_path} not readable"), "")),
        Some(mode) => {
            let why = if mode == "write back" {
                "the disk has a volatile cache, so each fdatasync also sends a cache flush: acknowledged data \
                 is durable but each flush costs a round trip (see fdatasync latency from `ringtail iotune`); \
                 only set `write through` if the disk has power-loss protection"
            } else {
                "the disk reports no volatile cache: fdatasync needs no cache flush; make sure that is true \
                 (power-loss protection), or acknowledged data can be lost on power failure"
            };
            findings.push(Finding::new(id, Status::Info, format!("{disk}: write cache {mode}"), why));
        }
    }
    findings
}

/// Interrupt lines of the data disks and network interfaces, as (irq, action name).
fn device_interrupts(ctx: &Context, disks: &Disks) -> Vec<(String, String)> {
    let sys = &ctx.system;
    let mut keys: Vec<String> = Vec::new();
    for disk in &disks.disks {
        keys.push(disk.clone());
        if let Some(device) = sys.link_name(&format!("/sys/block/{disk}/device")) {
            keys.push(device);
        }
    }
    for iface in sys.list("/sys/class/net") {
        if let Some(device) = sys.link_name(&format!("/sys/class/net/{iface}/device")) {
            keys.push(device);
            keys.push(iface);
        }
    }
    let Some(interrupts) = sys.read("/proc/interrupts") else { return Vec::new() };
    let mut out = Vec::new();
    for line in interrupts.lines().skip(1).take(INTERRUPT_LINES_MAX) {
        let Some((irq, rest)) = line.trim_start().split_once(':') else { continue };
        if !irq.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Some(action) = rest.split_whitespace().last() else { continue };
        let matches = keys.iter().any(|k| {
            action.strip_prefix(k.as_str()).is_some_and(|tail| !tail.starts_with(|c: char| c.is_ascii_digit()))
        });
        if matches {
            out.push((irq.to_string(), action.to_string()));
        }
    }
    out
}

fn irq_affinity(ctx: &Context, disks: &Disks) -> Vec<Finding> {
    let why = "an interrupt handled on a shard's core preempts that shard; with cores to spare, route disk and NIC \
               interrupts to cores that run no shard";
    let interrupts = device_interrupts(ctx, disks);
    if interrupts.is_empty() {
        return vec![Finding::new(
            "irq.affinity",
            Status::Unknown,
            "no disk or NIC interrupts found in /proc/interrupts",
            why,
        )];
    }
    let shard_cpus = ctx.shard_cpus();
    let spare: Vec<usize> = ctx.cpus.iter().copied().filter(|c| !shard_cpus.contains(c)).collect();
    let mut on_shards = Vec::new();
    let mut writes = Vec::new();
    for (irq, action) in &interrupts {
        let base = format!("/proc/irq/{irq}");
        let list = ctx
            .system
            .read(&format!("{base}/effective_affinity_list"))
            .or_else(|| ctx.system.read(&format!("{base}/smp_affinity_list")));
        let Some(list) = list else { continue };
        let cpus = parse_cpu_list(&list);
        if cpus.iter().any(|c| shard_cpus.contains(c)) {
            on_shards.push(format!("{irq} ({action}) on CPU {list}"));
            if !spare.is_empty() {
                let old = ctx.system.read(&format!("{base}/smp_affinity_list")).unwrap_or(list);
                writes.push(Write { path: format!("{base}/smp_affinity_list"), value: format_cpu_list(&spare), old });
            }
        }
    }
    if on_shards.is_empty() {
        return vec![Finding::new(
            "irq.affinity",
            Status::Ok,
            format!("{} disk/NIC interrupts, none on shard CPUs {}", interrupts.len(), format_cpu_list(&shard_cpus)),
            why,
        )];
    }
    let found = format!("interrupts on shard CPUs {}: {}", format_cpu_list(&shard_cpus), on_shards.join(", "));
    if spare.is_empty() {
        return vec![Finding::new(
            "irq.affinity",
            Status::Info,
            found,
            "every CPU runs a shard, so interrupts must land on a shard core; run fewer shards than CPUs to keep one core for interrupts",
        )];
    }
    vec![Finding::new("irq.affinity", Status::Warn, found, why).with_fix(
        format!(
            "route these interrupts to CPUs {} (stop irqbalance first or it moves them back)",
            format_cpu_list(&spare)
        ),
        writes,
    )]
}

fn memlock(ctx: &Context) -> Finding {
    let needed = MEMLOCK_PER_SHARD_BYTES_MIN * ctx.shards as u64;
    let why = format!(
        "each shard locks at least {} KiB for io_uring rings and registered buffers; below {} KiB for {} shards the broker cannot start",
        MEMLOCK_PER_SHARD_BYTES_MIN / 1024,
        needed / 1024,
        ctx.shards
    );
    let limits = ctx.system.read("/proc/self/limits").unwrap_or_default();
    let Some(line) = limits.lines().find(|l| l.starts_with("Max locked memory")) else {
        return Finding::new("limits.memlock", Status::Unknown, "no `Max locked memory` in /proc/self/limits", why);
    };
    let soft = line.trim_start_matches("Max locked memory").split_whitespace().next().unwrap_or("");
    let fix = "raise it: `ulimit -l unlimited` in the shell, `LimitMEMLOCK=infinity` in the systemd unit, \
               or `--ulimit memlock=-1` for docker";
    match soft {
        "unlimited" => Finding::new("limits.memlock", Status::Ok, "memlock unlimited", why),
        value => match value.parse::<u64>() {
            Ok(bytes) if bytes >= needed => {
                Finding::new("limits.memlock", Status::Ok, format!("memlock {} KiB", bytes / 1024), why)
            }
            Ok(bytes) => Finding::new(
                "limits.memlock",
                Status::Warn,
                format!("memlock {} KiB (need {} KiB)", bytes / 1024, needed / 1024),
                why,
            )
            .with_fix(fix, Vec::new()),
            Err(_) => {
                Finding::new("limits.memlock", Status::Unknown, format!("cannot parse memlock limit `{value}`"), why)
            }
        },
    }
}

/// A numeric procfs setting, or what is wrong with it.
fn numeric(ctx: &Context, path: &str) -> Result<u64, String> {
    match ctx.system.read(path) {
        None => Err(format!("{path} not readable")),
        Some(v) => v.parse::<u64>().map_err(|_| format!("{path}: cannot parse `{v}`")),
    }
}

fn aio_max_nr(ctx: &Context) -> Finding {
    let path = "/proc/sys/fs/aio-max-nr";
    let why = "io_uring does not use it, but libaio users on the same machine (fio, glommio's fallbacks) fail with EAGAIN when it runs out";
    match numeric(ctx, path) {
        Err(found) => Finding::new("limits.aio_max_nr", Status::Unknown, found, why),
        Ok(n) if n >= AIO_MAX_NR_MIN => {
            Finding::new("limits.aio_max_nr", Status::Ok, format!("fs.aio-max-nr {n}"), why)
        }
        Ok(n) => Finding::new(
            "limits.aio_max_nr",
            Status::Warn,
            format!("fs.aio-max-nr {n} (want at least {AIO_MAX_NR_MIN})"),
            why,
        )
        .with_fix(
            "raise fs.aio-max-nr (persist in /etc/sysctl.d)",
            vec![Write { path: path.to_string(), value: AIO_MAX_NR_MIN.to_string(), old: n.to_string() }],
        ),
    }
}

fn swappiness(ctx: &Context) -> Finding {
    let path = "/proc/sys/vm/swappiness";
    let why = "the broker keeps its indexes and buffers in memory and reads through the page cache; a high swappiness \
               swaps broker memory out to make room for cache, and a swapped-in page stalls a whole shard";
    match numeric(ctx, path) {
        Err(found) => Finding::new("vm.swappiness", Status::Unknown, found, why),
        Ok(n) if n <= SWAPPINESS_MAX => Finding::new("vm.swappiness", Status::Ok, format!("vm.swappiness {n}"), why),
        Ok(n) => Finding::new(
            "vm.swappiness",
            Status::Warn,
            format!("vm.swappiness {n} (want at most {SWAPPINESS_MAX})"),
            why,
        )
        .with_fix(
            "lower vm.swappiness (persist in /etc/sysctl.d)",
            vec![Write { path: path.to_string(), value: SWAPPINESS_APPLY.to_string(), old: n.to_string() }],
        ),
    }
}

fn transparent_hugepages(ctx: &Context) -> Finding {
    let path = "/sys/kernel/mm/transparent_hugepage/enabled";
    let why = "with `always`, page faults may stop a shard for memory compaction (latency spikes of milliseconds); \
               `madvise` keeps huge pages for the memory that asks for them";
    let Some(choices) = ctx.system.read(path) else {
        return Finding::new("memory.transparent_hugepages", Status::Unknown, format!("{path} not readable"), why);
    };
    let current = selected(&choices).unwrap_or(choices.as_str()).to_string();
    if current == "always" {
        Finding::new("memory.transparent_hugepages", Status::Warn, "transparent huge pages: always", why).with_fix(
            "use `madvise`",
            vec![Write { path: path.to_string(), value: "madvise".to_string(), old: current }],
        )
    } else {
        Finding::new("memory.transparent_hugepages", Status::Ok, format!("transparent huge pages: {current}"), why)
    }
}

fn clocksource(ctx: &Context) -> Finding {
    let base = "/sys/devices/system/clocksource/clocksource0";
    let path = format!("{base}/current_clocksource");
    let why = "the broker reads the clock for every request and batch timestamp; `tsc` (and `kvm-clock` in a VM) are read in user space, \
               `hpet` and `acpi_pm` cost a system call and microseconds each";
    let Some(current) = ctx.system.read(&path) else {
        return Finding::new("clocksource", Status::Unknown, format!("{path} not readable"), why);
    };
    let available = ctx.system.read(&format!("{base}/available_clocksource")).unwrap_or_default();
    let tsc_available = available.split_whitespace().any(|c| c == "tsc");
    match current.as_str() {
        "tsc" => Finding::new("clocksource", Status::Ok, "clocksource tsc", why),
        "kvm-clock" | "hyperv_clocksource_tsc_page" | "arch_sys_counter" => {
            Finding::new("clocksource", Status::Ok, format!("clocksource {current} (read in user space)"), why)
        }
        _ if tsc_available => {
            Finding::new("clocksource", Status::Warn, format!("clocksource {current} (tsc available)"), why)
                .with_fix("use tsc", vec![Write { path, value: "tsc".to_string(), old: current }])
        }
        _ => Finding::new(
            "clocksource",
            Status::Warn,
            format!("clocksource {current}, tsc not available ({available})"),
            why,
        ),
    }
}

fn io_uring(ctx: &Context) -> Finding {
    let why = "every shard drives its disk and network through io_uring (glommio needs Linux 5.8 or later)";
    let release = ctx.system.read("/proc/sys/kernel/osrelease").unwrap_or_default();
    let version: Vec<u32> =
        release.split(|c: char| !c.is_ascii_digit()).take(2).filter_map(|p| p.parse().ok()).collect();
    if let [major, minor] = version[..] {
        if (major, minor) < (5, 8) {
            return Finding::new("io_uring", Status::Warn, format!("kernel {release} is older than 5.8"), why)
                .with_fix("run the broker on Linux 5.8 or later", Vec::new());
        }
    }
    let path = "/proc/sys/kernel/io_uring_disabled";
    match ctx.system.read(path).as_deref() {
        None | Some("0") => Finding::new("io_uring", Status::Ok, format!("io_uring enabled (kernel {release})"), why),
        Some("1") => Finding::new(
            "io_uring",
            Status::Warn,
            "io_uring restricted to the group in kernel.io_uring_group (io_uring_disabled=1)",
            why,
        )
        .with_fix(
            "allow io_uring for all processes",
            vec![Write { path: path.to_string(), value: "0".to_string(), old: "1".to_string() }],
        ),
        Some(v) => Finding::new("io_uring", Status::Warn, format!("io_uring disabled (io_uring_disabled={v})"), why)
            .with_fix(
                "enable io_uring",
                vec![Write { path: path.to_string(), value: "0".to_string(), old: v.to_string() }],
            ),
    }
}

/// Size and free space (for unprivileged processes) of the file system holding `dir`, or of
/// its nearest existing ancestor.
fn fs_usage(dir: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(Path::new("/"));
    let c_path = std::ffi::CString::new(existing.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is NUL-terminated and `stat` is writable memory of statvfs's size; it is
    // read only after the call succeeded.
    if unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialized the structure.
    let stat = unsafe { stat.assume_init() };
    // statvfs counts are u64 on the 64-bit Linux targets Ringtail runs on.
    let fragment = stat.f_frsize;
    Ok((stat.f_blocks.saturating_mul(fragment), stat.f_bavail.saturating_mul(fragment)))
}

fn free_space(ctx: &Context) -> Finding {
    let why = "below the low free-space watermark the broker refuses produce to user topics (retriably) \
               until the high watermark is free again; reads and offset commits go on";
    let (total, free) = match fs_usage(&ctx.data_dir) {
        Ok(usage) => usage,
        Err(e) => {
            return Finding::new("filesystem.free_space", Status::Unknown, format!("cannot read free space: {e}"), why)
        }
    };
    let w = ctx.space;
    let percent = |p: u8| total / 100 * u64::from(p);
    let low = w.low_bytes.max(percent(w.low_percent));
    let high = w.high_bytes.max(percent(w.high_percent)).max(low);
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let found = format!(
        "{:.2} GiB free of {:.2} GiB ({}%); low watermark {:.2} GiB, high watermark {:.2} GiB",
        gib(free),
        gib(total),
        free.saturating_mul(100).checked_div(total).unwrap_or(0),
        gib(low),
        gib(high)
    );
    let finding =
        Finding::new("filesystem.free_space", if free < high { Status::Warn } else { Status::Ok }, found, why);
    match free < high {
        true => finding.with_fix(
            "free space (delete topics, lower retention.ms / retention.bytes) or add disk; or lower \
             --disk-free-low-bytes/--disk-free-low-percent (and the high ones) if the margin is too large",
            Vec::new(),
        ),
        false => finding,
    }
}

fn o_direct(ctx: &Context) -> Finding {
    let why =
        "the log bypasses the page cache with O_DIRECT writes; without it every write is copied and flushed twice";
    match crate::iotune::probe_o_direct(&ctx.data_dir) {
        Ok(()) => Finding::new(
            "filesystem.o_direct",
            Status::Ok,
            format!("O_DIRECT write works in {}", ctx.data_dir.display()),
            why,
        ),
        Err(e) => Finding::new(
            "filesystem.o_direct",
            Status::Warn,
            format!("O_DIRECT write failed in {}: {e}", ctx.data_dir.display()),
            why,
        )
        .with_fix("put the data directory on ext4 or xfs", Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        let check = |text: &str, cpus: &[usize], formatted: &str| {
            assert_eq!(parse_cpu_list(text), cpus, "{text}");
            assert_eq!(format_cpu_list(cpus), formatted);
        };
        check("0", &[0], "0");
        check("0-3", &[0, 1, 2, 3], "0-3");
        check("0-1,4,6-7\n", &[0, 1, 4, 6, 7], "0-1,4,6-7");
        check("", &[], "");
        check("x-y,2", &[2], "2");
    }

    #[test]
    fn selected_choice() {
        assert_eq!(selected("none [mq-deadline] kyber"), Some("mq-deadline"));
        assert_eq!(selected("[none]"), Some("none"));
        assert_eq!(selected("none"), None);
    }
}
