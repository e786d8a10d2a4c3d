//! One error type for the DPDK layer: what rvs was doing, and DPDK's reason for refusing.

use std::ffi::CStr;

use dpdk_sys as sys;

/// An error from the DPDK layer. `Dpdk` carries the errno DPDK returned and its `rte_strerror`
/// text, so a user sees DPDK's own reason ("No such file or directory", "Invalid argument").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{op} failed: {reason} (errno {errno})")]
    Dpdk {
        op: &'static str,
        errno: i32,
        reason: String,
    },
    #[error("EAL is already initialised in this process (it can only be initialised once)")]
    EalAlreadyInitialised,
    #[error("invalid argument for {what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error("CPU {cpu} does not exist or is not available to this process (available: {available})")]
    NoSuchCpu { cpu: usize, available: String },
    #[error("the queues of port {port} were already taken")]
    QueuesTaken { port: u16 },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Builds an error from a DPDK errno (positive or negative: ethdev returns `-errno`).
    pub(crate) fn dpdk(op: &'static str, errno: i32) -> Error {
        let errno = errno.abs();
        Error::Dpdk {
            op,
            errno,
            reason: strerror(errno),
        }
    }

    /// Builds an error from the calling thread's `rte_errno`.
    pub(crate) fn from_rte_errno(op: &'static str) -> Error {
        // SAFETY: rvs_errno reads the calling thread's rte_errno, a plain thread-local int.
        let errno = unsafe { sys::rvs_errno() };
        Error::dpdk(op, errno)
    }

    /// Maps an ethdev-style return code (0 or positive = ok, negative errno = failure).
    pub(crate) fn check(op: &'static str, ret: i32) -> Result<i32> {
        if ret < 0 {
            Err(Error::dpdk(op, ret))
        } else {
            Ok(ret)
        }
    }
}

/// DPDK's text for an errno, covering its own codes (E_RTE_SECONDARY, ...) as well as libc's.
pub(crate) fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string
    // valid until the next call on this thread; it is copied out at once.
    unsafe { CStr::from_ptr(sys::rte_strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}
