//! EAL arguments that fit this machine: hugepages when some are free, `--no-huge` otherwise,
//! and a file prefix unique to the process so that parallel runs never collide.

use std::path::Path;

/// How EAL memory is backed for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// 2 MB hugepages from hugetlbfs (the fast case).
    Hugepages,
    /// Ordinary pages: works anywhere, measurably slower (TLB misses on packet buffers).
    NoHuge,
}

impl Memory {
    /// Hugepages when hugetlbfs is mounted and has free 2 MB pages, else `NoHuge`.
    pub fn detect() -> Memory {
        let free = std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let mounted = std::fs::read_to_string("/proc/mounts")
            .map(|m| {
                m.lines()
                    .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"))
            })
            .unwrap_or(false);
        // EAL wants a few hundred MB for pools and rings.
        if mounted && free >= 128 {
            Memory::Hugepages
        } else {
            Memory::NoHuge
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Memory::Hugepages => "2 MB hugepages",
            Memory::NoHuge => "--no-huge (ordinary pages: expect about 40% lower throughput)",
        }
    }
}

/// EAL arguments for a process that owns its devices and shares nothing with other DPDK
/// processes: `-l 0` (workers are registered threads, see `dpdk::spawn_worker`), no PCI scan
/// unless `pci` is set, and nothing left behind on disk.
pub fn eal_args(prefix: &str, memory: Memory, mem_mb: u32, pci: bool) -> Vec<String> {
    let mut a: Vec<String> = vec!["-l".into(), "0".into(), "--file-prefix".into(), prefix.into()];
    match memory {
        // In-memory mode keeps hugepage files out of hugetlbfs (nothing to clean up).
        Memory::Hugepages => a.push("--in-memory".into()),
        // --no-huge implies legacy memory, which --in-memory refuses; --no-shconf is the
        // equivalent that works with it.
        Memory::NoHuge => a.extend([
            "--no-huge".into(),
            "-m".into(),
            mem_mb.to_string(),
            "--no-shconf".into(),
        ]),
    }
    a.push("--no-telemetry".into());
    if !pci {
        a.push("--no-pci".into());
    }
    a.extend(["--log-level".into(), "lib.eal:warning".into()]);
    a
}

/// 2 MB hugepages in use on the machine, in MB.
pub fn hugepages_in_use_mb() -> u64 {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/kernel/mm/hugepages/hugepages-2048kB/{f}"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    read("nr_hugepages").saturating_sub(read("free_hugepages")) * 2
}

/// Removes EAL's (then empty) runtime directory for `prefix`, once EAL is done with it.
pub fn remove_runtime_dir(prefix: &str) {
    for base in ["/var/run/dpdk", "/run/dpdk"] {
        let _ = std::fs::remove_dir(Path::new(base).join(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_huge_args_never_combine_in_memory() {
        let a = eal_args("p1", Memory::NoHuge, 256, false);
        assert!(a.contains(&"--no-huge".to_string()));
        assert!(
            !a.contains(&"--in-memory".to_string()),
            "EAL refuses --in-memory with --no-huge"
        );
        assert!(a.windows(2).any(|w| w == ["--file-prefix", "p1"]));
        assert!(a.windows(2).any(|w| w == ["-m", "256"]));
        assert!(a.contains(&"--no-pci".to_string()));
    }

    #[test]
    fn hugepage_args_use_in_memory_and_can_scan_pci() {
        let a = eal_args("p2", Memory::Hugepages, 256, true);
        assert!(a.contains(&"--in-memory".to_string()));
        assert!(!a.contains(&"--no-huge".to_string()));
        assert!(!a.contains(&"--no-pci".to_string()));
    }
}
