//! Worker threads pinned to CPUs and registered with EAL.
//!
//! rvs starts its workers as std threads rather than with `rte_eal_remote_launch`: each is
//! pinned to its CPU (core_affinity), then `rte_thread_register` gives it an lcore id, which is
//! what DPDK's per-lcore mempool caches are indexed by. EAL's own `-l` list can then stay at the
//! main lcore, and the worker set is the daemon's config, not EAL's.

use std::sync::mpsc;
use std::thread::JoinHandle;

use dpdk_sys as sys;

use crate::eal::Eal;
use crate::error::{Error, Result};

/// A running worker thread; `join` returns what its body returned.
#[derive(Debug)]
pub struct Worker<T> {
    // The body returns Some once registered; None only before `spawn_worker` returned Ok.
    handle: JoinHandle<Option<T>>,
    lcore: u32,
    cpu: usize,
}

impl<T> Worker<T> {
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// Waits for the worker to finish. A panic in the worker is returned as the panic payload.
    pub fn join(self) -> std::thread::Result<T> {
        self.handle
            .join()
            .map(|out| out.expect("a registered worker always runs its body"))
    }
}

/// Starts `body` on a new thread pinned to `cpu` and registered with EAL; `body` gets the
/// thread's lcore id. Returns once the thread is pinned and registered, or with the reason it
/// could not be (a CPU that does not exist, no free lcore id).
pub fn spawn_worker<T, F>(_eal: &Eal, name: &str, cpu: usize, body: F) -> Result<Worker<T>>
where
    F: FnOnce(u32) -> T + Send + 'static,
    T: Send + 'static,
{
    // Not core_affinity::get_core_ids(): it lists the *calling* thread's CPUs, and EAL pins
    // the thread that initialised it to the main lcore's CPU.
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    if !parse_cpu_list(&online).contains(&cpu) {
        return Err(Error::NoSuchCpu {
            cpu,
            available: online.trim().to_string(),
        });
    }
    let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<u32>>(1);
    let handle = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                let _ = ready_tx.send(Err(Error::Invalid {
                    what: "worker CPU",
                    why: format!("could not pin the thread to CPU {cpu}"),
                }));
                return None;
            }
            // SAFETY: EAL is initialised (the &Eal given to spawn_worker proves it) and this
            // thread is not yet registered.
            if unsafe { sys::rte_thread_register() } < 0 {
                let _ = ready_tx.send(Err(Error::from_rte_errno("rte_thread_register")));
                return None;
            }
            let lcore = current_lcore().expect("registered thread has an lcore id");
            let _ = ready_tx.send(Ok(lcore));
            let out = body(lcore);
            // SAFETY: this thread registered above and is done with DPDK.
            unsafe { sys::rte_thread_unregister() };
            Some(out)
        })
        .map_err(|e| Error::Invalid {
            what: "worker thread",
            why: e.to_string(),
        })?;
    match ready_rx.recv() {
        Ok(Ok(lcore)) => Ok(Worker { handle, lcore, cpu }),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(_) => {
            let _ = handle.join();
            Err(Error::Invalid {
                what: "worker thread",
                why: "exited before registering with EAL".into(),
            })
        }
    }
}

/// Parses the kernel's CPU list format ("0-3,8,10-11"); malformed parts are skipped.
pub(crate) fn parse_cpu_list(s: &str) -> Vec<usize> {
    s.trim()
        .split(',')
        .filter_map(|part| match part.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?..=b.parse().ok()?).collect::<Vec<usize>>()),
            None => part.parse().ok().map(|c| vec![c]),
        })
        .flatten()
        .collect()
}

/// The calling thread's lcore id, or None for a thread EAL does not know.
pub fn current_lcore() -> Option<u32> {
    // SAFETY: reads the calling thread's per-lcore id (LCORE_ID_ANY for unknown threads).
    let id = unsafe { sys::rvs_lcore_id() };
    (id != u32::MAX).then_some(id)
}

/// The time-stamp counter: the data path reads it once per burst.
#[inline]
pub fn tsc() -> u64 {
    // Inline where Rust has the instruction (several reads a poll loop): DPDK's rte_rdtsc
    // is the same instruction.
    #[cfg(target_arch = "x86_64")]
    // SAFETY: rdtsc has no preconditions.
    unsafe {
        std::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: rdtsc has no preconditions.
    unsafe {
        sys::rvs_rdtsc()
    }
}

/// TSC ticks per second, as EAL measured them at init.
pub fn tsc_hz(_eal: &Eal) -> u64 {
    // SAFETY: EAL is initialised, which calibrated the TSC.
    unsafe { sys::rte_get_tsc_hz() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists_parse_like_the_kernel_writes_them() {
        assert_eq!(super::parse_cpu_list("0-1\n"), vec![0, 1]);
        assert_eq!(super::parse_cpu_list("0,2-4,7"), vec![0, 2, 3, 4, 7]);
        assert_eq!(super::parse_cpu_list("x,3"), vec![3]);
        assert!(super::parse_cpu_list("").is_empty());
    }

    /// The inline read is DPDK's clock: between two reads through the C shim, on one thread
    /// (the TSC is synchronised across cores on the machines DPDK supports; one thread here).
    #[test]
    fn the_inline_tsc_reads_dpdks_clock() {
        for _ in 0..1000 {
            // SAFETY: rdtsc has no preconditions.
            let a = unsafe { super::sys::rvs_rdtsc() };
            let b = super::tsc();
            // SAFETY: as above.
            let c = unsafe { super::sys::rvs_rdtsc() };
            assert!(a <= b && b <= c, "{a} {b} {c}");
        }
    }
}
