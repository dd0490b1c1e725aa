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
const MOUNT_POINTS: [&str; 2] = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

fn mount_point(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|dir| dir.join("cgroup.controllers").is_file()).cloned()
}

/// The cgroup v2 path in the text of a `/proc/PID/cgroup` (its `0::/...` line).
fn own_cgroup(proc_cgroup: &str) -> Option<String> {
    proc_cgroup.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_owned)
}

/// Whether `controllers` (the text of a `cgroup.controllers`) lists `cpu` and `memory`.
pub fn has_cpu_and_memory(controllers: &str) -> bool {
    let list: Vec<&str> = controllers.split_whitespace().collect();
    list.contains(&"cpu") && list.contains(&"memory")
}

/// Joins the spacecore's cgroup with its limits; its path, or why there is none.
pub fn join(name: &str, vcpus: u32, memory_bytes: u64) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = MOUNT_POINTS.iter().map(PathBuf::from).collect();
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    join_at(&candidates, &proc_cgroup, name, vcpus, memory_bytes)
}

/// [`join`] with the hierarchy's candidate mount points and the process's `/proc/self/cgroup`.
fn join_at(
    candidates: &[PathBuf],
    proc_cgroup: &str,
    name: &str,
    vcpus: u32,
    memory_bytes: u64,
) -> Result<PathBuf, String> {
    let Some(mount) = mount_point(candidates) else {
        return Err("no cgroup v2 hierarchy on this host (cgroup v1 only)".into());
    };
    let own = own_cgroup(proc_cgroup)
        .ok_or("this process is in no cgroup v2 (no 0:: line in /proc/self/cgroup)")?;
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

    /// A directory laid out as a cgroup v2 hierarchy with the process in `/system.slice/x`,
    /// whose controllers are `offered`.
    fn fake_hierarchy(offered: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("unified");
        let own = mount.join("system.slice/x");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(mount.join("cgroup.controllers"), offered).unwrap();
        std::fs::write(own.join("cgroup.controllers"), offered).unwrap();
        std::fs::write(own.join("cgroup.subtree_control"), "").unwrap();
        (dir, mount)
    }

    #[test]
    fn the_launcher_moves_into_a_leaf_with_the_spec_s_limits() {
        let (dir, mount) = fake_hierarchy("cpuset cpu io memory pids\n");
        let candidates = [dir.path().join("absent"), mount.clone()];
        let proc_cgroup = "12:memory:/system.slice/x\n0::/system.slice/x\n";
        let leaf = join_at(&candidates, proc_cgroup, "avs-a", 2, 512 << 20).unwrap();
        assert_eq!(leaf, mount.join("system.slice/x/spacecore-avs-a"));
        let read = |p: &str| std::fs::read_to_string(leaf.join(p)).unwrap();
        assert_eq!(read("cgroup.procs"), "0", "the whole process moves");
        assert_eq!(read("cpu.max"), "300000 100000");
        assert_eq!(read("memory.max"), ((512u64 << 20) + LAUNCHER_MEMORY).to_string());
        let enabled = std::fs::read_to_string(mount.join("system.slice/x/cgroup.subtree_control")).unwrap();
        assert_eq!(enabled, "+cpu +memory");
    }

    #[test]
    fn a_hierarchy_without_cpu_and_memory_gets_no_cgroup_and_says_why() {
        let (dir, mount) = fake_hierarchy("hugetlb\n");
        let why =
            join_at(std::slice::from_ref(&mount), "0::/system.slice/x\n", "avs-a", 1, 1 << 20).unwrap_err();
        assert!(why.contains("offers hugetlb here, not cpu and memory"), "{why}");
        assert!(!mount.join("system.slice/x/spacecore-avs-a").exists());
        let why = join_at(&[dir.path().join("absent")], "", "avs-a", 1, 1 << 20).unwrap_err();
        assert!(why.contains("no cgroup v2 hierarchy"), "{why}");
        let why = join_at(&[mount], "4:memory:/\n", "avs-a", 1, 1 << 20).unwrap_err();
        assert!(why.contains("no 0:: line"), "{why}");
    }

    #[test]
    fn this_host_is_told_apart() {
        // Whatever the layout, either a v2 mount is found or the reason is given; on a host
        // whose v2 hierarchy offers no cpu and memory controllers, no cgroup is made.
        let candidates: Vec<PathBuf> = MOUNT_POINTS.iter().map(PathBuf::from).collect();
        match mount_point(&candidates) {
            None => assert!(!Path::new("/sys/fs/cgroup/cgroup.controllers").exists()),
            Some(mount) => {
                let own = own_cgroup(&std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default())
                    .unwrap_or_default();
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
