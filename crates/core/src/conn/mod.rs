//! The per-worker connection table.
//!
//! - **Entries** live in a slab allocated at creation; a free list (a stack with its capacity
//!   reserved) hands them out, so nothing allocates after `new`. A v4 entry is 64 bytes (one cache line).
//! - **Index**: open addressing with linear probing over 8-byte slots (a 32-bit hash tag and
//!   the entry index with its key kind), kept at most half full, with backward-shift deletion
//!   (no tombstones, so probe chains never rot). A NAT connection has two keys, the client's
//!   (in) and the real server's reply (out); DR/TUN connections one. Persistence templates
//!   are shared by the workers ([`persist`]).
//! - **Expiry**: a hashed timing wheel of 1024 slots of 100 ms. A packet only stores the new
//!   expiry time in its entry; when the wheel reaches the entry's slot, it is expired if due
//!   or moved to the slot of its new time. Per packet that is one store.
//! - **Full table**: a new flow is refused ([`Full`]); live entries are never evicted.

pub mod persist;
pub mod state;
mod table;

pub use table::{
    Addr, Conn, ConnTable, Full, KeyKind, Tuple, CONN_CLIENT_VIA_GW, CONN_INACTIVE, CONN_NO_OUTPUT,
    CONN_PROXY_V2, CONN_RS_VIA_GW, CONN_TOA, NIL, TICK_MS,
};
