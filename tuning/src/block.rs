//! Finds the mount and the physical disks under a directory: mount point and file system
//! from `/proc/self/mountinfo`, then `major:minor` -> `/sys/dev/block`, partitions to their
//! parent disk, and md RAID or device-mapper devices to their member disks.

use crate::system::System;
use std::path::Path;

/// Stacked block devices are followed at most this deep (md on dm on a partition is 3).
const STACK_DEPTH_MAX: usize = 8;

/// The mount holding a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted (`/`, `/data`).
    pub mount_point: String,
    /// File system type (`ext4`, `xfs`, `overlay`).
    pub fs_type: String,
    /// What is mounted (`/dev/vda1`, `overlay`).
    pub source: String,
    /// Device numbers as `major:minor`.
    pub device: String,
}

/// The block devices under a directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disks {
    /// The device the file system sits on, as named in `/sys/block` or a partition
    /// name (`vda1`, `md0`).
    pub top: Option<String>,
    /// Whole physical disks that take the I/O (`vda`; the members of `md0`).
    pub disks: Vec<String>,
    /// How the top device maps to the disks, for the report (`md0 -> sda1 -> sda`).
    pub path: Vec<String>,
}

/// Unescapes mountinfo's octal escapes (`\040` is a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount with the longest mount point that contains `dir`.
pub fn mount_of(system: &System, dir: &Path) -> Option<Mount> {
    let mountinfo = system.read("/proc/self/mountinfo")?;
    let dir = dir.to_string_lossy();
    let mut best: Option<Mount> = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let fields: Vec<&str> = left.split_whitespace().collect();
        let right: Vec<&str> = right.split_whitespace().collect();
        if fields.len() < 5 || right.len() < 2 {
            continue;
        }
        let mount_point = unescape(fields[4]);
        let contains = mount_point == "/"
            || *dir == mount_point
            || dir.strip_prefix(mount_point.as_str()).is_some_and(|rest| rest.starts_with('/'));
        if contains && best.as_ref().is_none_or(|b| mount_point.len() >= b.mount_point.len()) {
            best = Some(Mount {
                mount_point,
                fs_type: right[0].to_string(),
                source: unescape(right[1]),
                device: fields[2].to_string(),
            });
        }
    }
    best
}

/// The kernel name of a block device from its `major:minor`, via `/sys/dev/block/M:m/uevent`.
fn name_of_device(system: &System, device: &str) -> Option<String> {
    let uevent = system.read(&format!("/sys/dev/block/{device}/uevent"))?;
    uevent.lines().find_map(|l| l.strip_prefix("DEVNAME=")).map(|n| n.trim_start_matches("/dev/").to_string())
}

/// The whole disk a partition belongs to (`sda1` -> `sda`), or the name itself if it is
/// a whole disk.
pub fn parent_disk(system: &System, name: &str) -> String {
    if system.exists(&format!("/sys/block/{name}")) {
        return name.to_string();
    }
    system
        .list("/sys/block")
        .into_iter()
        .find(|disk| system.exists(&format!("/sys/block/{disk}/{name}/partition")))
        .unwrap_or_else(|| name.to_string())
}

/// The block devices under a mount: resolves partitions and follows md/dm members.
pub fn disks_of(system: &System, mount: &Mount) -> Disks {
    let top = name_of_device(system, &mount.device).or_else(|| {
        // btrfs and some overlays report an anonymous device; fall back to the source name.
        let source = mount.source.strip_prefix("/dev/")?;
        system.exists(&format!("/sys/class/block/{source}")).then(|| source.to_string())
    });
    let mut disks = Disks { top: top.clone(), ..Disks::default() };
    if let Some(top) = top {
        collect(system, &top, 0, &mut disks);
    }
    disks
}

fn collect(system: &System, name: &str, depth: usize, out: &mut Disks) {
    if depth > STACK_DEPTH_MAX {
        return;
    }
    let disk = parent_disk(system, name);
    if disk != name {
        out.path.push(format!("{name} is a partition of {disk}"));
    }
    let members = system.list(&format!("/sys/block/{disk}/slaves"));
    if members.is_empty() {
        if !out.disks.contains(&disk) {
            out.disks.push(disk);
        }
        return;
    }
    out.path.push(format!("{disk} is built from {}", members.join(", ")));
    for member in members {
        collect(system, &member, depth + 1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/mnt/my\040disk"), "/mnt/my disk");
        assert_eq!(unescape(r"/a\134b"), r"/a\b");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
    }
}
