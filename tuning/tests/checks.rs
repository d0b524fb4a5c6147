//! `ringtail tune` checks against fake `sys/` and `proc/` trees: each test builds a machine
//! that is well tuned except for one thing and asserts what the checks say about it.

use ringtail_tuning::{checks, run, Context, Finding, Status, System, TuneOptions};
use std::fs;
use std::path::{Path, PathBuf};

/// A fake machine under `CARGO_TARGET_TMPDIR`.
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn empty(name: &str) -> Tree {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tuning-trees").join(name);
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        Tree { root }
    }

    /// A well-tuned bare-metal machine with 4 CPUs; the data directory `/data/ringtail` is on
    /// xfs on partition `sdb1` of disk `sdb`, whose interrupt is on CPU 3.
    fn good(name: &str) -> Tree {
        let tree = Tree::empty(name);
        tree.file("sys/devices/system/cpu/online", "0-3\n");
        for cpu in 0..4 {
            tree.file(&format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"), "performance\n");
        }
        tree.file("sys/class/dmi/id/sys_vendor", "Dell Inc.\n");
        tree.file("proc/1/cgroup", "0::/init.scope\n");
        tree.file("proc/1/comm", "systemd\n");
        tree.file("proc/2/comm", "kthreadd\n");
        tree.file(
            "proc/self/mountinfo",
            "22 1 0:21 / /proc rw,relatime - proc proc rw\n\
             27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
             30 27 8:17 / /data rw,relatime - xfs /dev/sdb1 rw\n\
             31 27 0:40 / /data2 rw,relatime - tmpfs tmpfs rw\n",
        );
        tree.file("sys/dev/block/8:1/uevent", "MAJOR=8\nMINOR=1\nDEVNAME=sda1\nDEVTYPE=partition\n");
        tree.file("sys/dev/block/8:17/uevent", "MAJOR=8\nMINOR=17\nDEVNAME=sdb1\nDEVTYPE=partition\n");
        for disk in ["sda", "sdb"] {
            tree.file(&format!("sys/block/{disk}/{disk}1/partition"), "1\n");
            tree.disk_queue(disk, "[none] mq-deadline kyber", "2", "write through");
        }
        tree.link("sys/block/sdb/device", "../../devices/pci0000:00/0000:00:04.0/virtio3");
        tree.file("proc/interrupts", "           CPU0       CPU1       CPU2       CPU3\n  41:  0  0  0  5  PCI-MSIX-0000:00:04.0  1-edge  virtio3-req.0\n  42:  0  0  9  0  PCI-MSIX-0000:00:05.0  1-edge  virtio31-req.0\nNMI:  0 0 0 0  Non-maskable interrupts\n");
        tree.file("proc/irq/41/smp_affinity_list", "3\n");
        tree.file("proc/irq/41/effective_affinity_list", "3\n");
        tree.file("proc/self/limits", "Limit                     Soft Limit           Hard Limit           Units\nMax locked memory         unlimited            unlimited            bytes\n");
        tree.file("proc/sys/fs/aio-max-nr", "1048576\n");
        tree.file("proc/sys/vm/swappiness", "1\n");
        tree.file("sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n");
        tree.file("sys/devices/system/clocksource/clocksource0/current_clocksource", "tsc\n");
        tree.file("sys/devices/system/clocksource/clocksource0/available_clocksource", "tsc hpet acpi_pm\n");
        tree.file("proc/sys/kernel/io_uring_disabled", "0\n");
        tree.file("proc/sys/kernel/osrelease", "6.8.0-generic\n");
        tree
    }

    fn disk_queue(&self, disk: &str, scheduler: &str, nomerges: &str, write_cache: &str) {
        self.file(&format!("sys/block/{disk}/queue/scheduler"), &format!("{scheduler}\n"));
        self.file(&format!("sys/block/{disk}/queue/nomerges"), &format!("{nomerges}\n"));
        self.file(&format!("sys/block/{disk}/queue/write_cache"), &format!("{write_cache}\n"));
        self.file(&format!("sys/block/{disk}/queue/rotational"), "0\n");
    }

    fn file(&self, relative: &str, contents: &str) {
        let path = self.root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    fn link(&self, relative: &str, target: &str) {
        let path = self.root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&path);
        std::os::unix::fs::symlink(target, path).unwrap();
    }

    fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.root.join(relative)).unwrap()
    }

    fn options(&self, apply: bool, shards: Option<usize>) -> TuneOptions {
        TuneOptions { data_dir: PathBuf::from("/data/ringtail"), apply, json: false, shards, space: Default::default() }
    }

    fn findings(&self, shards: Option<usize>) -> Vec<Finding> {
        run(&System::fake(&self.root), &self.options(false, shards))
    }
}

fn find<'a>(findings: &'a [Finding], id: &str) -> &'a Finding {
    findings.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("no finding `{id}` in {findings:#?}"))
}

/// Asserts that finding `id` has `status` and that its `found` text contains `found`.
fn check(findings: &[Finding], id: &str, status: Status, found: &str) {
    let f = find(findings, id);
    assert_eq!(f.status, status, "{f:#?}");
    assert!(f.found.contains(found), "`{}` does not contain `{found}`", f.found);
}

#[test]
fn well_tuned_machine_has_no_warnings() {
    let tree = Tree::good("good");
    let findings = tree.findings(Some(2));
    let warnings: Vec<_> = findings.iter().filter(|f| f.status == Status::Warn).collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    check(&findings, "environment", Status::Info, "bare metal");
    check(&findings, "cpu.governor", Status::Ok, "performance on every CPU");
    check(&findings, "irqbalance", Status::Ok, "not running");
    check(&findings, "filesystem", Status::Ok, "/data/ringtail is on xfs (/dev/sdb1) mounted at /data, disks: sdb");
    check(&findings, "filesystem", Status::Ok, "sdb1 is a partition of sdb");
    check(&findings, "disk.sdb.scheduler", Status::Ok, "scheduler none");
    check(&findings, "disk.sdb.nomerges", Status::Ok, "nomerges 2");
    check(&findings, "disk.sdb.write_cache", Status::Info, "write through");
    check(&findings, "irq.affinity", Status::Ok, "1 disk/NIC interrupts, none on shard CPUs 0-1");
    check(&findings, "limits.memlock", Status::Ok, "unlimited");
    check(&findings, "limits.aio_max_nr", Status::Ok, "1048576");
    check(&findings, "vm.swappiness", Status::Ok, "vm.swappiness 1");
    check(&findings, "memory.transparent_hugepages", Status::Ok, "madvise");
    check(&findings, "clocksource", Status::Ok, "tsc");
    check(&findings, "io_uring", Status::Ok, "enabled (kernel 6.8.0-generic)");
    assert!(findings.iter().all(|f| !f.id.starts_with("disk.sda")), "the root disk is not the data disk");
    assert!(findings.iter().all(|f| f.id != "filesystem.o_direct"), "O_DIRECT is probed on the real machine only");
}

/// Data-driven: one file changed from the well-tuned machine, and what the checks must say.
#[test]
fn each_mistuned_setting_is_reported() {
    let cases: &[(&str, &str, &str, Status, &str)] = &[
        (
            "sys/devices/system/cpu/cpu2/cpufreq/scaling_governor",
            "powersave",
            "cpu.governor",
            Status::Warn,
            "1 of 4 CPUs not on `performance` (governors seen: performance, powersave)",
        ),
        ("proc/4242/comm", "irqbalance", "irqbalance", Status::Warn, "irqbalance is running (pid 4242)"),
        (
            "sys/block/sdb/queue/scheduler",
            "none [mq-deadline] kyber",
            "disk.sdb.scheduler",
            Status::Warn,
            "sdb: scheduler mq-deadline",
        ),
        (
            "sys/block/sdb/queue/scheduler",
            "[mq-deadline] kyber",
            "disk.sdb.scheduler",
            Status::Info,
            "`none` not offered",
        ),
        ("sys/block/sdb/queue/nomerges", "0", "disk.sdb.nomerges", Status::Warn, "sdb: nomerges 0 (want 2)"),
        ("sys/block/sdb/queue/write_cache", "write back", "disk.sdb.write_cache", Status::Info, "write back"),
        (
            "proc/self/limits",
            "Max locked memory         65536                65536                bytes",
            "limits.memlock",
            Status::Warn,
            "memlock 64 KiB (need 1024 KiB)",
        ),
        (
            "proc/self/limits",
            "Max locked memory         8388608              8388608              bytes",
            "limits.memlock",
            Status::Ok,
            "memlock 8192 KiB",
        ),
        (
            "proc/sys/fs/aio-max-nr",
            "1024",
            "limits.aio_max_nr",
            Status::Warn,
            "fs.aio-max-nr 1024 (want at least 65536)",
        ),
        ("proc/sys/vm/swappiness", "60", "vm.swappiness", Status::Warn, "vm.swappiness 60 (want at most 10)"),
        ("proc/sys/vm/swappiness", "lots", "vm.swappiness", Status::Unknown, "cannot parse `lots`"),
        (
            "sys/kernel/mm/transparent_hugepage/enabled",
            "[always] madvise never",
            "memory.transparent_hugepages",
            Status::Warn,
            "always",
        ),
        (
            "sys/devices/system/clocksource/clocksource0/current_clocksource",
            "hpet",
            "clocksource",
            Status::Warn,
            "clocksource hpet (tsc available)",
        ),
        (
            "sys/devices/system/clocksource/clocksource0/current_clocksource",
            "kvm-clock",
            "clocksource",
            Status::Ok,
            "kvm-clock",
        ),
        ("proc/sys/kernel/io_uring_disabled", "2", "io_uring", Status::Warn, "io_uring disabled (io_uring_disabled=2)"),
        ("proc/sys/kernel/io_uring_disabled", "1", "io_uring", Status::Warn, "restricted"),
        (
            "proc/sys/kernel/osrelease",
            "5.4.0-150-generic",
            "io_uring",
            Status::Warn,
            "kernel 5.4.0-150-generic is older than 5.8",
        ),
        (
            "proc/irq/41/effective_affinity_list",
            "1",
            "irq.affinity",
            Status::Warn,
            "interrupts on shard CPUs 0-1: 41 (virtio3-req.0) on CPU 1",
        ),
        ("sys/class/dmi/id/sys_vendor", "QEMU", "environment", Status::Info, "virtual machine (QEMU)"),
        ("proc/1/cgroup", "0::/system.slice/docker-0123abcd.scope", "environment", Status::Info, "container (docker)"),
        ("proc/1/cgroup", "0::/kubepods/burstable/pod1", "environment", Status::Info, "container (kubernetes)"),
    ];
    for (i, (file, contents, id, status, found)) in cases.iter().enumerate() {
        let tree = Tree::good(&format!("case-{i}"));
        tree.file(file, contents);
        let findings = tree.findings(Some(2));
        check(&findings, id, *status, found);
    }
}

#[test]
fn fixes_carry_the_write_and_its_undo() {
    let tree = Tree::good("fixes");
    tree.file("sys/block/sdb/queue/scheduler", "none [mq-deadline] kyber\n");
    tree.file("sys/devices/system/cpu/cpu1/cpufreq/scaling_governor", "schedutil\n");
    let findings = tree.findings(Some(2));
    let fix = find(&findings, "disk.sdb.scheduler").fix.as_ref().unwrap();
    assert_eq!(fix.writes.len(), 1);
    assert_eq!(fix.writes[0].path, "/sys/block/sdb/queue/scheduler");
    assert_eq!(fix.writes[0].value, "none");
    assert_eq!(fix.writes[0].old, "mq-deadline", "undo writes the selected scheduler, not the whole list");
    assert_eq!(fix.writes[0].undo_command(), "echo 'mq-deadline' > /sys/block/sdb/queue/scheduler");
    let fix = find(&findings, "cpu.governor").fix.as_ref().unwrap();
    assert_eq!(fix.writes.len(), 1);
    assert_eq!(fix.writes[0].path, "/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor");
    assert_eq!(fix.writes[0].old, "schedutil");
}

#[test]
fn md_raid_members_are_checked_on_their_parent_disks() {
    let tree = Tree::good("md-raid");
    tree.file("proc/self/mountinfo", "27 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 27 9:0 / /data rw - ext4 /dev/md0 rw\n");
    tree.file("sys/dev/block/9:0/uevent", "MAJOR=9\nMINOR=0\nDEVNAME=md0\nDEVTYPE=disk\n");
    tree.file("sys/block/md0/queue/scheduler", "none\n");
    for (disk, nomerges) in [("nvme0n1", "0"), ("nvme1n1", "2")] {
        fs::create_dir_all(tree.root.join(format!("sys/block/md0/slaves/{disk}p1"))).unwrap();
        tree.file(&format!("sys/block/{disk}/{disk}p1/partition"), "1\n");
        tree.disk_queue(disk, "none [mq-deadline]", nomerges, "write back");
    }
    let findings = tree.findings(Some(2));
    check(&findings, "filesystem", Status::Ok, "disks: nvme0n1, nvme1n1");
    check(
        &findings,
        "filesystem",
        Status::Ok,
        "md0 is built from nvme0n1p1, nvme1n1p1; nvme0n1p1 is a partition of nvme0n1",
    );
    check(&findings, "disk.nvme0n1.scheduler", Status::Warn, "nvme0n1: scheduler mq-deadline");
    check(&findings, "disk.nvme1n1.scheduler", Status::Warn, "nvme1n1: scheduler mq-deadline");
    check(&findings, "disk.nvme0n1.nomerges", Status::Warn, "nomerges 0");
    check(&findings, "disk.nvme1n1.nomerges", Status::Ok, "nomerges 2");
    assert!(findings.iter().all(|f| !f.id.starts_with("disk.md0")), "md0 has no queue of its own to tune");
}

#[test]
fn whole_disk_without_partition_and_tmpfs_data_dir() {
    let tree = Tree::good("whole-disk");
    tree.file("proc/self/mountinfo", "27 1 254:0 / / rw - ext4 /dev/vda rw\n31 27 0:40 / /data rw - tmpfs tmpfs rw\n");
    let findings = tree.findings(Some(2));
    check(&findings, "filesystem", Status::Warn, "/data/ringtail is on tmpfs (tmpfs) mounted at /data");

    tree.file("proc/self/mountinfo", "27 1 254:0 / / rw - ext4 /dev/vda rw\n");
    tree.file("sys/dev/block/254:0/uevent", "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n");
    tree.disk_queue("vda", "none [mq-deadline]", "0", "write back");
    tree.file("sys/block/vda/queue/rotational", "1\n");
    let findings = tree.findings(Some(2));
    check(&findings, "filesystem", Status::Ok, "on ext4 (/dev/vda) mounted at /, disks: vda");
    check(&findings, "disk.vda.scheduler", Status::Warn, "vda: scheduler mq-deadline");
}

#[test]
fn interrupts_on_shard_cores_are_info_when_every_core_runs_a_shard() {
    let tree = Tree::good("irq-all-shards");
    let findings = tree.findings(None);
    check(&findings, "irq.affinity", Status::Info, "interrupts on shard CPUs 0-3: 41 (virtio3-req.0) on CPU 3");

    tree.file("proc/irq/41/effective_affinity_list", "0-1");
    tree.file("proc/irq/41/smp_affinity_list", "0-3");
    let findings = tree.findings(Some(2));
    let fix = find(&findings, "irq.affinity").fix.as_ref().unwrap();
    assert_eq!(fix.writes[0].path, "/proc/irq/41/smp_affinity_list");
    assert_eq!(fix.writes[0].value, "2-3");
    assert_eq!(fix.writes[0].old, "0-3");
}

#[test]
fn missing_files_are_unknown_not_errors() {
    let tree = Tree::empty("empty");
    let findings = tree.findings(Some(1));
    check(&findings, "filesystem", Status::Unknown, "no mount found");
    check(&findings, "vm.swappiness", Status::Unknown, "not readable");
    check(&findings, "limits.memlock", Status::Unknown, "Max locked memory");
    check(&findings, "cpu.governor", Status::Info, "no cpufreq governor");
}

#[test]
fn apply_changes_the_files_and_reports_undo() {
    let tree = Tree::good("apply");
    tree.file("sys/block/sdb/queue/scheduler", "none [mq-deadline] kyber\n");
    tree.file("sys/block/sdb/queue/nomerges", "0\n");
    tree.file("proc/sys/vm/swappiness", "60\n");
    tree.file("sys/devices/system/cpu/cpu3/cpufreq/scaling_governor", "powersave\n");
    let findings = run(&System::fake(&tree.root), &tree.options(true, Some(2)));

    assert_eq!(tree.read("sys/block/sdb/queue/scheduler"), "none");
    assert_eq!(tree.read("sys/block/sdb/queue/nomerges"), "2");
    assert_eq!(tree.read("proc/sys/vm/swappiness"), "1");
    assert_eq!(tree.read("sys/devices/system/cpu/cpu3/cpufreq/scaling_governor"), "performance");

    check(
        &findings,
        "apply.vm.swappiness",
        Status::Ok,
        "changed /proc/sys/vm/swappiness from `60` to `1`; undo: echo '60' > /proc/sys/vm/swappiness",
    );
    check(&findings, "apply.disk.sdb.nomerges", Status::Ok, "undo: echo '0' > /sys/block/sdb/queue/nomerges");
    check(&findings, "apply.cpu.governor", Status::Ok, "from `powersave` to `performance`");
    // A fake sysfs file keeps what was written; the re-check sees `none` without brackets.
    check(&findings, "vm.swappiness", Status::Ok, "vm.swappiness 1");
    check(&findings, "disk.sdb.nomerges", Status::Ok, "nomerges 2");
    assert_eq!(findings.iter().filter(|f| f.status == Status::Warn).count(), 0, "{findings:#?}");
}

#[test]
fn refused_writes_become_findings_explained_by_the_environment() {
    let tree = Tree::good("apply-refused");
    tree.file("sys/class/dmi/id/sys_vendor", "QEMU\n");
    tree.file("proc/sys/vm/swappiness", "60\n");
    let ctx = Context::new(System::fake(&tree.root), Path::new("/data/ringtail"), Some(2));
    let findings = checks::run_all(&ctx);
    // The file disappears between check and apply, as a read-only or vanished sysfs entry would refuse the write.
    fs::remove_file(tree.root.join("proc/sys/vm/swappiness")).unwrap();
    let changes = ringtail_tuning::apply(&ctx, &findings);
    assert_eq!(changes.len(), 1);
    check(&changes, "apply.vm.swappiness", Status::Warn, "could not apply: 1 to /proc/sys/vm/swappiness");
    assert!(changes[0].why.contains("virtual machine"), "{}", changes[0].why);
}

#[test]
fn warnings_and_json_report() {
    let tree = Tree::good("report");
    tree.file("proc/sys/vm/swappiness", "60\n");
    let findings = tree.findings(Some(2));
    let lines = ringtail_tuning::warnings(&findings);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("vm.swappiness: vm.swappiness 60 (want at most 10) (fix: lower vm.swappiness"),
        "{}",
        lines[0]
    );

    let json: serde_json::Value = serde_json::from_str(&ringtail_tuning::finding::render_json(&findings)).unwrap();
    assert_eq!(json["warnings"], 1);
    let swappiness = json["findings"].as_array().unwrap().iter().find(|f| f["id"] == "vm.swappiness").unwrap();
    assert_eq!(swappiness["status"], "warn");
    assert_eq!(swappiness["fix"]["writes"][0]["old"], "60");

    let text = ringtail_tuning::finding::render_text(&findings);
    assert!(text.contains("[warn   ] vm.swappiness: vm.swappiness 60"), "{text}");
    assert!(
        text.contains("echo '1' > /proc/sys/vm/swappiness   (undo: echo '60' > /proc/sys/vm/swappiness)"),
        "{text}"
    );
}
