//! One rvsd per config: a lock file beside the control socket, taken before EAL or a port is
//! touched (a second rvsd on the same devices would truncate the first one's pcaps, announce
//! its VIPs, or take its NICs). The lock is the kernel's (`flock`): it goes with the process,
//! so a crashed rvsd leaves nothing that blocks the next.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Held for the life of the daemon.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    pub path: PathBuf,
}

/// The lock file for a control socket path.
pub fn lock_path(socket: &Path) -> PathBuf {
    let mut p = socket.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Takes the lock for `socket`, or says which process holds it.
pub fn lock(socket: &Path) -> Result<InstanceLock> {
    let path = lock_path(socket);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // 0750, as the control server wants the socket's directory (it checks it next).
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            bail!(
                "another rvsd (pid {}) runs with this config (it holds {}): stop it first, or give this one another [control] socket",
                pid.trim(),
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(InstanceLock { _file: file, path })
}

/// Removes the EAL runtime directories (`/var/run/dpdk/rvsd-PID`) that rvsd processes which
/// no longer exist left behind (a crash skips the clean-up).
pub fn remove_stale_runtime_dirs() {
    for base in ["/var/run/dpdk", "/run/dpdk"] {
        let Ok(entries) = std::fs::read_dir(base) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("rvsd-")) else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else { continue };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("rvs.sock");
        let held = lock(&sock).unwrap();
        assert_eq!(held.path, dir.path().join("rvs.sock.lock"));
        let e = lock(&sock).unwrap_err().to_string();
        assert!(
            e.contains(&format!("another rvsd (pid {})", std::process::id())),
            "{e}"
        );
        drop(held);
        assert!(lock(&sock).is_ok(), "released with its holder");
    }

    #[test]
    fn stale_runtime_dirs_of_dead_processes_go() {
        let base = Path::new("/var/run/dpdk");
        if std::fs::create_dir_all(base).is_err() {
            return; // not root: nothing rvsd could clean either
        }
        // A pid above the kernel's maximum is never alive.
        let stale = base.join("rvsd-4194304999");
        std::fs::create_dir_all(stale.join("sub")).unwrap();
        let live = base.join(format!("rvsd-{}", std::process::id()));
        std::fs::create_dir_all(&live).unwrap();
        remove_stale_runtime_dirs();
        assert!(!stale.exists());
        assert!(live.exists(), "a live process's directory stays");
        let _ = std::fs::remove_dir(&live);
    }
}
