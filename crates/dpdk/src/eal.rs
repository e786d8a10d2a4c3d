//! EAL initialisation, once per process.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::sync::Mutex;

use dpdk_sys as sys;

use crate::error::{Error, Result};

/// Proof that EAL is initialised. EAL is process-global and can be initialised only once, so
/// there is at most one `Eal` per process; share it by reference (or in a `OnceLock`).
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

/// Whether this process has an initialised EAL. DPDK itself refuses a second `rte_eal_init`
/// but only after logging an alert; this makes the refusal a plain error value.
static INITIALISED: Mutex<bool> = Mutex::new(false);

impl Eal {
    /// Initialises EAL with `args` (without the program name: `["--no-huge", "-l", "0"]`).
    ///
    /// A bad argument returns [`Error::Dpdk`] with DPDK's reason. DPDK 22.11 keeps part of a
    /// failed parse (the lcore list, for one), so a process should report the error and exit
    /// rather than retry. After success, further calls return [`Error::EalAlreadyInitialised`].
    pub fn init<I, S>(args: I) -> Result<Eal>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut done = INITIALISED.lock().unwrap_or_else(|p| p.into_inner());
        if *done {
            return Err(Error::EalAlreadyInitialised);
        }
        let mut owned = vec![CString::new("rvs").expect("no NUL")];
        for a in args {
            let a = a.as_ref();
            owned.push(CString::new(a).map_err(|_| Error::Invalid {
                what: "EAL argument",
                why: format!("{a:?} contains a NUL byte"),
            })?);
        }
        // EAL keeps pointers into argv (and getopt permutes it), so argv lives for the process.
        // It is a few hundred bytes, once per process.
        let argv: &'static mut [*mut c_char] = Vec::leak(
            owned
                .into_iter()
                .map(CString::into_raw)
                .chain(std::iter::once(std::ptr::null_mut()))
                .collect(),
        );
        let argc = (argv.len() - 1) as i32;
        // SAFETY: argv is a NULL-terminated array of argc valid, NUL-terminated, leaked strings;
        // the mutex above serialises calls from this crate.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(Error::from_rte_errno("rte_eal_init"));
        }
        *done = true;
        Ok(Eal { _private: () })
    }

    /// The NUMA socket of the calling lcore (0 on single-socket machines and non-EAL threads).
    pub fn socket_id(&self) -> i32 {
        // SAFETY: rte_socket_id reads the calling thread's per-lcore variable; EAL is up.
        let s = unsafe { sys::rte_socket_id() } as i32;
        if s < 0 {
            0
        } else {
            s
        }
    }

    /// Number of Ethernet ports currently available.
    pub fn port_count(&self) -> u16 {
        // SAFETY: EAL is initialised; the call only reads the ethdev table.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// Releases EAL's resources (hugepage files, memory). Everything built on EAL (ports,
    /// mempools, mbufs) must be gone first, hence `self` by value.
    pub fn cleanup(self) -> Result<()> {
        // SAFETY: EAL is initialised; the caller gave up the token, so no new DPDK objects can
        // be made through it.
        let ret = unsafe { sys::rte_eal_cleanup() };
        Error::check("rte_eal_cleanup", ret).map(|_| ())
    }
}

/// The version of the DPDK library this process runs with, e.g. "DPDK 22.11.11".
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string; no EAL needed.
    unsafe { CStr::from_ptr(sys::rte_version()) }
        .to_string_lossy()
        .into_owned()
}
