//! The spacecore's cgroup (v2): `cpu.max` and `memory.max` from `spec.resources`.
//!
//! The launcher moves itself (all its threads) into `<its cgroup>/spacecore-<name>`, a leaf,
//! then enables the `cpu` and `memory` controllers for the children of the cgroup it came from
//! (which then holds no process of the launcher's; under systemd, give the unit `Delegate=yes`
//! so that it may), and writes the limits. A host without a cgroup v2 hierarchy offering both
//! controllers (a cgroup v1 or hybrid layout, where they sit on v1) gets none, with the reason.

use std::path::{Path, PathBuf};

/// The period of `cpu.max`, in microseconds.
const PERIOD_US: u64 = 100_000;
/// What `memory.max` allows beyond guest memory: the launcher itself (its threads' stacks,
/// relay buffers, page tables).
pub const LAUNCHER_MEMORY: u64 = 256 << 20;

/// `cpu.max`: one CPU per vCPU and one more for the device workers, relays and supervisor.
pub fn cpu_max(vcpus: u32) -> String {
    format!("{} {PERIOD_US}", (u64::from(vcpus) + 1) * PERIOD_US)
}

/// `memory.max`: guest memory plus [`LAUNCHER_MEMORY`].
pub fn memory_max(memory_bytes: u64) -> String {
    (memory_bytes + LAUNCHER_MEMORY).to_string()
}

/// Where the cgroup v2 hierarchy is mounted: `/sys/fs/cgroup` (unified layout) or
/// `/sys/fs/cgroup/unified` (hybrid layout).
fn mount_point() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(PathBuf::from)
        .find(|dir| dir.join("cgroup.controllers").is_file())
}

/// This process's cgroup v2 path (`0::/...` in /proc/self/cgroup).
fn own_cgroup() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_owned)
}

/// Whether `controllers` (the text of a `cgroup.controllers`) lists `cpu` and `memory`.
pub fn has_cpu_and_memory(controllers: &str) -> bool {
    let list: Vec<&str> = controllers.split_whitespace().collect();
    list.contains(&"cpu") && list.contains(&"memory")
}

/// Joins the spacecore's cgroup with its limits; its path, or why there is none.
pub fn join(name: &str, vcpus: u32, memory_bytes: u64) -> Result<PathBuf, String> {
    let Some(mount) = mount_point() else {
        return Err("no cgroup v2 hierarchy on this host (cgroup v1 only)".into());
    };
    let own = own_cgroup().ok_or("this process is in no cgroup v2 (no 0:: line in /proc/self/cgroup)")?;
    let parent = mount.join(own.trim_start_matches('/'));
    let offered = std::fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
    if !has_cpu_and_memory(&offered) {
        return Err(format!(
            "the cgroup v2 hierarchy at {} offers {} here, not cpu and memory (on a hybrid layout they \
             sit on cgroup v1)",
            parent.display(),
            if offered.trim().is_empty() { "no controller".to_owned() } else { offered.trim().to_owned() }
        ));
    }
    let leaf = parent.join(format!("spacecore-{name}"));
    match std::fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", leaf.display())),
    }
    write(&leaf.join("cgroup.procs"), "0")?;
    // The parent now holds no process of the launcher's, so it may hand the controllers down.
    let enabled = std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
    if !has_cpu_and_memory(&enabled) {
        write(&parent.join("cgroup.subtree_control"), "+cpu +memory").map_err(|e| {
            format!("{e} (another process in {} keeps the controllers from its children)", parent.display())
        })?;
    }
    write(&leaf.join("cpu.max"), &cpu_max(vcpus))?;
    write(&leaf.join("memory.max"), &memory_max(memory_bytes))?;
    Ok(leaf)
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_spec() {
        assert_eq!(cpu_max(2), "300000 100000");
        assert_eq!(memory_max(128 << 20), ((128u64 << 20) + LAUNCHER_MEMORY).to_string());
        assert!(has_cpu_and_memory("cpuset cpu io memory pids\n"));
        assert!(!has_cpu_and_memory("cpuset io pids"));
        assert!(!has_cpu_and_memory(""));
    }

    #[test]
    fn this_host_is_told_apart() {
        // Whatever the layout, either a v2 mount is found or the reason is given; on a host
        // whose v2 hierarchy offers no cpu and memory controllers, no cgroup is made.
        match mount_point() {
            None => assert!(!Path::new("/sys/fs/cgroup/cgroup.controllers").exists()),
            Some(mount) => {
                let own = own_cgroup().unwrap_or_default();
                let offered = std::fs::read_to_string(
                    mount.join(own.trim_start_matches('/')).join("cgroup.controllers"),
                )
                .unwrap_or_default();
                if !has_cpu_and_memory(&offered) {
                    let why = join("unit-test-never-made", 1, 1 << 20).unwrap_err();
                    assert!(why.contains("not cpu and memory"), "{why}");
                }
            }
        }
    }
}
