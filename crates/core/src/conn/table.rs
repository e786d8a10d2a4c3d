use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::{Forward, RealId};

/// An address family the table can hold (IPv4 and IPv6 get a table each, so a v4 entry stays
/// small).
pub trait Addr: Copy + Eq + Debug + 'static {
    /// 0.0.0.0 / ::, for empty entries.
    const UNSPECIFIED: Self;
    fn mix(self, h: u64) -> u64;
    /// `h` mixed with two addresses (IPv4: both in one word, one round).
    fn mix_pair(self, other: Self, h: u64) -> u64;
    /// `h` mixed with an address and a port (IPv4: one word, one round).
    fn mix_port(self, port: u16, h: u64) -> u64;
    /// The address with only its first `prefix_len` bits kept (persistence netmask).
    fn masked(self, prefix_len: u8) -> Self;
    fn ip(self) -> IpAddr;
}

/// What keys an out key's hash apart from an in key's of the same endpoint.
const OUT_KEY: u64 = 0x5851_f42d_4c95_7f2d;

#[inline]
fn fold_hash(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

#[inline]
fn mix64(h: u64, v: u64) -> u64 {
    // One round of a multiply-xorshift mixer: cheap, and good enough with a secret seed.
    let x = (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

impl Addr for Ipv4Addr {
    const UNSPECIFIED: Self = Ipv4Addr::UNSPECIFIED;

    #[inline]
    fn mix(self, h: u64) -> u64 {
        mix64(h, u32::from(self) as u64)
    }

    #[inline]
    fn mix_pair(self, other: Self, h: u64) -> u64 {
        mix64(h, (u32::from(self) as u64) << 32 | u32::from(other) as u64)
    }

    #[inline]
    fn mix_port(self, port: u16, h: u64) -> u64 {
        mix64(h, (u32::from(self) as u64) << 16 | port as u64)
    }

    fn masked(self, prefix_len: u8) -> Self {
        let m = if prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - prefix_len.min(32))
        };
        Ipv4Addr::from(u32::from(self) & m)
    }

    fn ip(self) -> IpAddr {
        IpAddr::V4(self)
    }
}

impl Addr for Ipv6Addr {
    const UNSPECIFIED: Self = Ipv6Addr::UNSPECIFIED;

    #[inline]
    fn mix(self, h: u64) -> u64 {
        let v = u128::from(self);
        mix64(mix64(h, v as u64), (v >> 64) as u64)
    }

    #[inline]
    fn mix_pair(self, other: Self, h: u64) -> u64 {
        other.mix(self.mix(h))
    }

    #[inline]
    fn mix_port(self, port: u16, h: u64) -> u64 {
        mix64(self.mix(h), port as u64)
    }

    fn masked(self, prefix_len: u8) -> Self {
        let m = if prefix_len == 0 {
            0
        } else {
            u128::MAX << (128 - prefix_len.min(128) as u32)
        };
        Ipv6Addr::from(u128::from(self) & m)
    }

    fn ip(self) -> IpAddr {
        IpAddr::V6(self)
    }
}

/// A packet's 5-tuple as it travels (source first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple<A> {
    pub src: A,
    pub dst: A,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

/// Which key of an entry a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// client:cport -> vip:vport
    In = 1,
    /// rip:rport -> client:cport (NAT replies), rip:rport -> laddr:lport (FullNAT's)
    Out = 2,
}

pub const NIL: u32 = u32::MAX;
/// Counted as inactive in the real server's counters (IPVS's IP_VS_CONN_F_INACTIVE).
pub const CONN_INACTIVE: u8 = 0x02;
/// DR/TUN: no reply traffic through the director, so the input-only TCP table applies.
pub const CONN_NO_OUTPUT: u8 = 0x04;
/// The real server is reached through its port's gateway (else it is on-link).
pub const CONN_RS_VIA_GW: u8 = 0x08;
/// The client is reached through its port's gateway.
pub const CONN_CLIENT_VIA_GW: u8 = 0x10;
/// FullNAT: the PROXY protocol header to insert is version 2 (else version 1).
pub const CONN_PROXY_V2: u8 = 0x01;
/// FullNAT: the client's address goes to the server in a TOA option.
pub const CONN_TOA: u8 = 0x20;
/// A slab slot holding no entry (never used, or released).
const CONN_FREE: u8 = 0x80;

/// One connection (persistence templates are shared by the workers: `conn::persist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Conn<A> {
    pub client: A,
    pub vaddr: A,
    pub raddr: A,
    /// The address the real server sees the connection come from, and its port: FullNAT's
    /// local address and port; the client's own for NAT (so the reply key is one shape).
    pub laddr: A,
    /// Absolute expiry time, milliseconds.
    pub expires: u64,
    pub real: RealId,
    /// The slot of the shared template controlling this connection, or NIL.
    pub template: u32,
    /// Under a template: its persistence timeout, seconds (the connection keeps it alive).
    pub persist_s: u32,
    wheel_next: u32,
    /// FullNAT with the client's address delivered: the client's first sequence number
    /// after its SYN (where the PROXY header goes, and from where its stream is shifted).
    pub isn: u32,
    /// When the sync daemon last sent it, in seconds of the worker's clock plus one (0: never).
    pub synced_s: u32,
    pub cport: u16,
    pub vport: u16,
    pub rport: u16,
    pub lport: u16,
    /// FullNAT: the PROXY protocol header's length, by which the client's sequence numbers
    /// are shifted toward the server and the server's acknowledgements back (0: none).
    pub proxy_len: u8,
    pub proto: u8,
    pub state: u8,
    pub forward: Forward,
    pub flags: u8,
    /// Egress ports toward the real server and toward the client, resolved once at creation
    /// (IPVS caches the route in the destination the same way).
    pub rs_port: u8,
    pub client_port: u8,
}

impl<A: Addr> Conn<A> {
    /// A connection of `client:cport -> vaddr:vport` bound to real server `real` at
    /// `raddr:rport` with its forwarding method; state NONE, no template, no expiry yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        proto: u8,
        client: A,
        cport: u16,
        vaddr: A,
        vport: u16,
        raddr: A,
        rport: u16,
        forward: Forward,
        real: RealId,
    ) -> Self {
        Conn {
            client,
            vaddr,
            raddr,
            laddr: client,
            synced_s: 0,
            expires: 0,
            real,
            template: NIL,
            persist_s: 0,
            wheel_next: NIL,
            isn: 0,
            cport,
            vport,
            rport,
            lport: cport,
            proxy_len: 0,
            proto,
            state: 0,
            forward,
            flags: 0,
            rs_port: 0,
            client_port: 0,
        }
    }

    fn key(&self, kind: KeyKind) -> Tuple<A> {
        match kind {
            KeyKind::In => Tuple {
                src: self.client,
                dst: self.vaddr,
                sport: self.cport,
                dport: self.vport,
                proto: self.proto,
            },
            KeyKind::Out => Tuple {
                src: self.raddr,
                dst: self.laddr,
                sport: self.rport,
                dport: self.lport,
                proto: self.proto,
            },
        }
    }
}

impl<A: Addr> Default for Conn<A> {
    fn default() -> Self {
        Conn::new(
            0,
            A::UNSPECIFIED,
            0,
            A::UNSPECIFIED,
            0,
            A::UNSPECIFIED,
            0,
            Forward::Nat,
            RealId(0),
        )
    }
}

/// The table is full: the new flow is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

const WHEEL_SLOTS: usize = 1024;
pub const TICK_MS: u64 = 100;

pub struct ConnTable<A> {
    entries: Box<[Conn<A>]>,
    free: Vec<u32>,
    /// The index: open addressing, linear probing, at most half full. A slot is 32 bits:
    /// a tag from the key's hash, the key's kind, and its entry's number (all ones: empty),
    /// laid out by [`SlotLayout`].
    slots: Box<[u32]>,
    layout: SlotLayout,
    mask: usize,
    seed: u64,
    wheel: Box<[u32]>,
    /// Each timer slot's last entry: slots are first in, first out, so the oldest entry of a
    /// slot is its head (what eviction takes first).
    wheel_tail: Box<[u32]>,
    tick: u64,
    /// The tick of the last `evict_one` that found nothing to evict.
    evict_failed_at: Option<u64>,
}

impl<A: Addr> Debug for ConnTable<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnTable")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// `n` empty index slots, written one by one (the allocator's fresh pages are mapped on
/// first write, so a busy table's first connections would take a page fault each, 4 KiB of
/// index per fault, hundreds of microseconds for a burst of new flows): the writes here take
/// those faults when the table is made.
fn empty_slots(n: usize) -> Box<[u32]> {
    vec![EMPTY; n].into_boxed_slice()
}

/// An index slot holding no key: all ones, which no slot in use is (its entry bits would
/// name an entry past the capacity).
const EMPTY: u32 = u32::MAX;

/// A hint that `x` is about to be read: its cache line is loaded while the CPU goes on.
#[inline(always)]
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and cannot fault (SSE, which every
    // x86-64 CPU has); `x` is a live reference besides. The one `unsafe` outside the DPDK
    // crates: the burst's table walk overlaps its cache misses with it.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(x as *const T as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Where the parts of a 32-bit index slot lie, from the table's capacity: the low bits
/// hold the entry's number (never all ones: see [`EMPTY`]), the next bit the key's kind
/// (set for an out key), and the rest the top bits of the key's hash, a tag that spares most
/// probes of other keys a read of their entry. A table of 1M entries keeps 10 bits of tag; one
/// of 2^29, one bit. (Half the index of 64-bit slots: 16 bytes a connection at 1M, not 32.)
#[derive(Debug, Clone, Copy)]
struct SlotLayout {
    /// The entry bits.
    idx: u32,
    /// The kind's bit.
    out: u32,
    /// The tag's bits.
    tag: u32,
}

impl SlotLayout {
    fn new(capacity: usize) -> SlotLayout {
        // Enough bits for the capacity itself, so that the entries' numbers (below it) never
        // set them all.
        let bits = usize::BITS - capacity.leading_zeros();
        let idx = ((1u64 << bits) - 1) as u32;
        let out = idx + 1;
        SlotLayout {
            idx,
            out,
            tag: !(idx | out),
        }
    }

    /// A key's slot without its entry: its tag and kind, which a probe compares in one test.
    #[inline(always)]
    fn key(&self, hash: u32, kind: KeyKind) -> u32 {
        (hash & self.tag) | if kind == KeyKind::Out { self.out } else { 0 }
    }

    #[inline(always)]
    fn slot(&self, hash: u32, kind: KeyKind, idx: u32) -> u32 {
        self.key(hash, kind) | idx
    }

    /// The entry a slot in use names.
    #[inline(always)]
    fn entry(&self, s: u32) -> u32 {
        s & self.idx
    }

    #[inline(always)]
    fn kind(&self, s: u32) -> KeyKind {
        if s & self.out != 0 {
            KeyKind::Out
        } else {
            KeyKind::In
        }
    }
}

impl<A: Addr> ConnTable<A> {
    /// A table for `capacity` entries (connections plus templates). `seed` keys the hash: give
    /// each worker a random one so that flows cannot be crafted to collide.
    pub fn new(capacity: usize, seed: u64) -> ConnTable<A> {
        assert!(
            capacity > 0 && capacity < (1 << 30),
            "connection table capacity must be 1..2^30"
        );
        // Up to two keys an entry, at most half the slots used.
        let nslots = (capacity * 4).next_power_of_two();
        let free_slot = Conn {
            flags: CONN_FREE,
            ..Conn::default()
        };
        ConnTable {
            entries: vec![free_slot; capacity].into_boxed_slice(),
            free: (0..capacity as u32).rev().collect(),
            slots: empty_slots(nslots),
            layout: SlotLayout::new(capacity),
            mask: nslots - 1,
            seed,
            wheel: vec![NIL; WHEEL_SLOTS].into_boxed_slice(),
            wheel_tail: vec![NIL; WHEEL_SLOTS].into_boxed_slice(),
            tick: 0,
            evict_failed_at: None,
        }
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the table occupies (entries, index, free list, wheel).
    pub fn memory_bytes(&self) -> usize {
        self.entries.len() * std::mem::size_of::<Conn<A>>()
            + self.slots.len() * 4
            + self.free.capacity() * 4
            + self.wheel.len() * 4
    }

    #[inline]
    pub fn hash(&self, t: &Tuple<A>, kind: KeyKind) -> u32 {
        match kind {
            KeyKind::In => fold_hash(self.base_hash(t)),
            KeyKind::Out => self.out_hash(t.proto, t.dst, t.dport),
        }
    }

    /// An in key's hash: the whole tuple, keyed.
    #[inline]
    fn base_hash(&self, t: &Tuple<A>) -> u64 {
        let h = t.src.mix_pair(t.dst, self.seed ^ ((t.proto as u64) << 8));
        mix64(h, ((t.sport as u64) << 16) | t.dport as u64)
    }

    /// An out key's hash: only the reply's destination (the client's address and port for
    /// NAT, the local address and port for FullNAT) and the protocol, keyed. A reply finds it
    /// as before (the full key is compared), and a new connection's out slot is known from
    /// its first packet, before a real server is chosen, so the burst can prefetch it (one
    /// cache miss a new connection less). A client endpoint talking to several services
    /// shares a home slot with itself, a run of a few.
    #[inline]
    fn out_hash(&self, proto: u8, dst: A, dport: u16) -> u32 {
        fold_hash(dst.mix_port(dport, self.seed ^ OUT_KEY ^ ((proto as u64) << 8)))
    }

    /// Asks for the first index slot of `hash` to be brought into cache (a prefetch: nothing
    /// waits for it). Called for a whole burst before any probe.
    #[inline]
    pub fn prefetch_slot(&self, hash: u32) {
        prefetch(&self.slots[hash as usize & self.mask]);
    }

    /// Reads the first index slots of a packet's hashes (prefetched beforehand) and asks for
    /// the entry whose key they name (an in key first, a reply's out key). Where neither does,
    /// the packet may start a connection of client `src:sport`: its out key's home slot and
    /// the `nth` next free entry are asked for instead. Returns whether it did so.
    #[inline(always)]
    pub fn prefetch_entry(
        &self,
        (h_in, h_out): (u32, u32),
        proto: u8,
        src: A,
        sport: u16,
        nth: usize,
    ) -> bool {
        let l = self.layout;
        let s = self.slots[h_in as usize & self.mask];
        if s != EMPTY && s & !l.idx == l.key(h_in, KeyKind::In) {
            prefetch(&self.entries[l.entry(s) as usize]);
            return false;
        }
        let s = self.slots[h_out as usize & self.mask];
        if s != EMPTY && s & !l.idx == l.key(h_out, KeyKind::Out) {
            prefetch(&self.entries[l.entry(s) as usize]);
            return false;
        }
        prefetch(&self.slots[self.out_hash(proto, src, sport) as usize & self.mask]);
        if let Some(&i) = self
            .free
            .len()
            .checked_sub(nth + 1)
            .and_then(|k| self.free.get(k))
        {
            prefetch(&self.entries[i as usize]);
        }
        true
    }

    /// Finds the entry a packet with tuple `t` belongs to: its in key, or (NAT) its out key.
    #[inline]
    pub fn lookup(&self, t: &Tuple<A>) -> Option<(u32, KeyKind)> {
        self.lookup_hashed(t, self.hashes(t))
    }

    /// A tuple's hashes as an in key and as an out key, for [`Self::lookup_hashed`].
    #[inline]
    pub fn hashes(&self, t: &Tuple<A>) -> (u32, u32) {
        (
            fold_hash(self.base_hash(t)),
            self.out_hash(t.proto, t.dst, t.dport),
        )
    }

    /// [`Self::lookup`] with the hashes computed beforehand (for a whole burst at once).
    #[inline(always)]
    pub fn lookup_hashed(&self, t: &Tuple<A>, (h_in, h_out): (u32, u32)) -> Option<(u32, KeyKind)> {
        if let Some(i) = self.find(t, h_in, KeyKind::In) {
            return Some((i, KeyKind::In));
        }
        self.find(t, h_out, KeyKind::Out).map(|i| (i, KeyKind::Out))
    }

    /// Looks up one key kind with a precomputed hash.
    #[inline(always)]
    pub fn find(&self, t: &Tuple<A>, hash: u32, kind: KeyKind) -> Option<u32> {
        let mut i = hash as usize & self.mask;
        // Tag and kind compared in one masked test (the slot's layout: `SlotLayout`).
        let l = self.layout;
        let want = l.key(hash, kind);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            if s & !l.idx == want {
                let idx = l.entry(s);
                if self.entries[idx as usize].key(kind) == *t {
                    return Some(idx);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    #[inline]
    pub fn get(&self, idx: u32) -> &Conn<A> {
        &self.entries[idx as usize]
    }

    #[inline]
    pub fn get_mut(&mut self, idx: u32) -> &mut Conn<A> {
        &mut self.entries[idx as usize]
    }

    /// Binds a connection to another real server (a sync record that says so), keeping its
    /// keys right: a NAT entry's reply key names the real server.
    pub fn rebind(&mut self, idx: u32, raddr: A, rport: u16, forward: Forward, real: RealId) {
        if self.entries[idx as usize].forward.has_replies() {
            self.unindex(idx, KeyKind::Out);
        }
        let c = &mut self.entries[idx as usize];
        c.raddr = raddr;
        c.rport = rport;
        c.forward = forward;
        c.real = real;
        if forward.has_replies() {
            self.index(idx, KeyKind::Out);
        }
    }

    /// Adds an entry (its keys and its timer) expiring at `conn.expires`.
    pub fn insert(&mut self, conn: Conn<A>) -> Result<u32, Full> {
        let idx = self.free.pop().ok_or(Full)?;
        self.entries[idx as usize] = conn;
        self.index(idx, KeyKind::In);
        if conn.forward.has_replies() {
            self.index(idx, KeyKind::Out);
        }
        self.link(idx);
        Ok(idx)
    }

    fn index(&mut self, idx: u32, kind: KeyKind) {
        let t = self.entries[idx as usize].key(kind);
        let h = self.hash(&t, kind);
        let mut i = h as usize & self.mask;
        while self.slots[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = self.layout.slot(h, kind, idx);
    }

    fn unindex(&mut self, idx: u32, kind: KeyKind) {
        let t = self.entries[idx as usize].key(kind);
        let h = self.hash(&t, kind);
        let mut i = h as usize & self.mask;
        let want = self.layout.slot(h, kind, idx);
        while self.slots[i] != want {
            debug_assert!(self.slots[i] != EMPTY, "unindexing a key that is not indexed");
            if self.slots[i] == EMPTY {
                return;
            }
            i = (i + 1) & self.mask;
        }
        // Backward-shift deletion: pull later members of the probe run into the hole when
        // their home slot is not between the hole and themselves.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let s = self.slots[j];
            if s == EMPTY {
                break;
            }
            // A slot keeps only part of its hash: its home is found from its entry's key.
            let home = self.home(s);
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = EMPTY;
    }

    /// The home slot of the key an index slot in use holds.
    fn home(&self, s: u32) -> usize {
        let kind = self.layout.kind(s);
        let key = self.entries[self.layout.entry(s) as usize].key(kind);
        self.hash(&key, kind) as usize & self.mask
    }

    fn link(&mut self, idx: u32) {
        let due = self.entries[idx as usize].expires / TICK_MS;
        let tick = due.max(self.tick + 1);
        let w = (tick % WHEEL_SLOTS as u64) as usize;
        self.entries[idx as usize].wheel_next = NIL;
        match self.wheel_tail[w] {
            NIL => self.wheel[w] = idx,
            tail => self.entries[tail as usize].wheel_next = idx,
        }
        self.wheel_tail[w] = idx;
    }

    /// Removes an entry now (its keys and its slab slot; the wheel drops it lazily).
    fn release(&mut self, idx: u32) {
        let c = self.entries[idx as usize];
        self.unindex(idx, KeyKind::In);
        if c.forward.has_replies() {
            self.unindex(idx, KeyKind::Out);
        }
        self.entries[idx as usize].flags |= CONN_FREE;
        self.free.push(idx);
    }

    /// The entry in slab slot `idx`, if the slot holds one (for walks over the whole table
    /// in steps, such as a sync resend).
    pub fn live(&self, idx: u32) -> Option<&Conn<A>> {
        self.entries
            .get(idx as usize)
            .filter(|c| c.flags & CONN_FREE == 0)
    }

    /// Advances the wheel to `now` (ms). Each due entry is offered to `on_expire`, which returns
    /// a new expiry to keep it (a template still controlling connections) or None to remove
    /// it; it sees the entry before removal, and gets the table to update related entries.
    pub fn advance(&mut self, now: u64, mut on_expire: impl FnMut(&mut Self, u32) -> Option<u64>) -> usize {
        let target = now / TICK_MS;
        if target <= self.tick {
            return 0;
        }
        // Whole rotations add nothing: each slot is visited at most once per call.
        let steps = (target - self.tick).min(WHEEL_SLOTS as u64);
        let mut expired = 0;
        for s in 0..steps {
            let tick = target - steps + 1 + s;
            let w = (tick % WHEEL_SLOTS as u64) as usize;
            let mut idx = std::mem::replace(&mut self.wheel[w], NIL);
            self.wheel_tail[w] = NIL;
            self.tick = tick;
            while idx != NIL {
                let next = self.entries[idx as usize].wheel_next;
                if self.entries[idx as usize].expires <= now {
                    match on_expire(self, idx) {
                        Some(t) => {
                            self.entries[idx as usize].expires = t;
                            self.link(idx);
                        }
                        None => {
                            self.release(idx);
                            expired += 1;
                        }
                    }
                } else {
                    self.link(idx);
                }
                idx = next;
            }
        }
        self.tick = target;
        expired
    }

    /// Under a SYN flood, when the table is full: removes one entry `evictable` accepts (a
    /// half-open connection), the one that would expire first (the oldest, within a timer
    /// slot) among the first few entries of each slot from now on, so that a new connection can take its place (IPVS's
    /// drop_entry defense, made deterministic). `on_evict` settles its accounting first.
    /// Returns false when there is none; then no new search is made until the clock moves,
    /// so a table full of established connections costs one search per tick, not per SYN.
    pub fn evict_one(
        &mut self,
        evictable: impl Fn(&Conn<A>) -> bool,
        on_evict: impl FnOnce(&mut Self, u32),
    ) -> bool {
        if self.evict_failed_at == Some(self.tick) {
            return false;
        }
        for step in 1..=WHEEL_SLOTS as u64 {
            let w = ((self.tick + step) % WHEEL_SLOTS as u64) as usize;
            // Look at the slot's head; one that may not go moves to the slot's tail (same
            // slot, same expiry), so established connections never pile up in front of the
            // half-open ones that may.
            for _ in 0..8 {
                let head = self.wheel[w];
                if head == NIL {
                    break;
                }
                let next = self.entries[head as usize].wheel_next;
                if evictable(&self.entries[head as usize]) {
                    self.wheel[w] = next;
                    if self.wheel_tail[w] == head {
                        self.wheel_tail[w] = NIL;
                    }
                    on_evict(self, head);
                    self.release(head);
                    return true;
                }
                let tail = self.wheel_tail[w];
                if tail == head {
                    break;
                }
                self.wheel[w] = next;
                self.entries[tail as usize].wheel_next = head;
                self.entries[head as usize].wheel_next = NIL;
                self.wheel_tail[w] = head;
            }
        }
        self.evict_failed_at = Some(self.tick);
        false
    }

    /// Every live entry, for listings (`ipvsadm -Lc`); not for the data path.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Conn<A>)> + '_ {
        let mut live = vec![true; self.entries.len()];
        for &f in &self.free {
            live[f as usize] = false;
        }
        self.entries
            .iter()
            .enumerate()
            .filter(move |(i, _)| live[*i])
            .map(|(i, c)| (i as u32, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn conn(i: u32, fwd: Forward, expires: u64) -> Conn<Ipv4Addr> {
        let mut c = Conn::new(
            6,
            Ipv4Addr::from(0x0a01_0000 + i),
            1000 + (i % 50000) as u16,
            v4("10.0.0.100"),
            80,
            v4("192.168.1.2"),
            8080,
            fwd,
            RealId(0),
        );
        c.expires = expires;
        c
    }

    #[test]
    fn entry_sizes() {
        assert!(
            std::mem::size_of::<Conn<Ipv4Addr>>() <= 64,
            "a v4 entry fits a cache line"
        );
        assert_eq!(std::mem::size_of::<Conn<Ipv4Addr>>(), 64);
        assert_eq!(std::mem::size_of::<Conn<Ipv6Addr>>(), 112);
    }

    #[test]
    fn an_out_keys_slot_is_known_from_the_connections_first_packet() {
        let mut t = ConnTable::new(1024, 7);
        let c = conn(3, Forward::Nat, 500);
        let first = Tuple {
            src: c.client,
            dst: c.vaddr,
            sport: c.cport,
            dport: 80,
            proto: 6,
        };
        let reply_from = |raddr: Ipv4Addr, rport: u16| Tuple {
            src: raddr,
            dst: c.client,
            sport: rport,
            dport: c.cport,
            proto: 6,
        };
        // The reply's hash is the client endpoint's, whichever server answers.
        let h = t.out_hash(6, c.client, c.cport);
        assert_eq!(t.hash(&reply_from(c.raddr, 8080), KeyKind::Out), h);
        assert_eq!(t.hash(&reply_from(v4("192.168.1.9"), 9000), KeyKind::Out), h);
        assert_ne!(t.out_hash(17, c.client, c.cport), h, "the protocol is keyed");
        assert_ne!(t.out_hash(6, c.client, c.cport + 1), h);
        // Before the connection, its first packet is a new flow (the prefetch says so);
        // after, it and the reply are found, and neither is taken for a new one.
        assert!(t.prefetch_entry(t.hashes(&first), 6, c.client, c.cport, 0));
        let i = t.insert(c).unwrap();
        assert!(!t.prefetch_entry(t.hashes(&first), 6, c.client, c.cport, 0));
        let reply = reply_from(c.raddr, 8080);
        assert!(!t.prefetch_entry(t.hashes(&reply), 6, reply.src, reply.sport, 0));
        assert_eq!(t.lookup(&reply), Some((i, KeyKind::Out)));
        // One client endpoint to two services: two out keys on one home slot, both found,
        // and removing one keeps the other.
        let mut d = conn(3, Forward::Nat, 1000);
        d.vaddr = v4("10.0.0.101");
        d.raddr = v4("192.168.1.3");
        let j = t.insert(d).unwrap();
        assert_eq!(t.lookup(&reply_from(d.raddr, 8080)), Some((j, KeyKind::Out)));
        assert_eq!(t.lookup(&reply), Some((i, KeyKind::Out)));
        assert_eq!(t.advance(600, |_, _| None), 1, "the first connection expires");
        assert_eq!(t.lookup(&reply), None);
        assert_eq!(t.lookup(&reply_from(d.raddr, 8080)), Some((j, KeyKind::Out)));
    }

    #[test]
    fn in_and_out_keys_find_a_nat_entry_dr_has_no_out_key() {
        let mut t = ConnTable::new(16, 7);
        let c = conn(1, Forward::Nat, 1000);
        let i = t.insert(c).unwrap();
        let inbound = Tuple {
            src: c.client,
            dst: c.vaddr,
            sport: c.cport,
            dport: 80,
            proto: 6,
        };
        let reply = Tuple {
            src: c.raddr,
            dst: c.client,
            sport: 8080,
            dport: c.cport,
            proto: 6,
        };
        assert_eq!(t.lookup(&inbound), Some((i, KeyKind::In)));
        assert_eq!(t.lookup(&reply), Some((i, KeyKind::Out)));
        let d = conn(2, Forward::Dr, 1000);
        t.insert(d).unwrap();
        let reply = Tuple {
            src: d.raddr,
            dst: d.client,
            sport: 8080,
            dport: d.cport,
            proto: 6,
        };
        assert_eq!(t.lookup(&reply), None);
    }

    #[test]
    fn full_table_refuses_and_keeps_live_entries() {
        let mut t = ConnTable::new(4, 1);
        for i in 0..4 {
            t.insert(conn(i, Forward::Nat, 10_000)).unwrap();
        }
        assert_eq!(t.insert(conn(9, Forward::Nat, 10_000)), Err(Full));
        assert_eq!(t.len(), 4);
        for i in 0..4 {
            let c = conn(i, Forward::Nat, 0);
            assert!(t
                .lookup(&Tuple {
                    src: c.client,
                    dst: c.vaddr,
                    sport: c.cport,
                    dport: 80,
                    proto: 6
                })
                .is_some());
        }
    }

    #[test]
    fn a_full_table_evicts_the_soonest_expiring_evictable_entry_and_keeps_its_timers_whole() {
        let mut t: ConnTable<Ipv4Addr> = ConnTable::new(4, 1);
        // Entry i expires at 1000 * (i + 1); entries 0 and 2 are "established" (not evictable).
        for i in 0..4 {
            let mut c = conn(i, Forward::Nat, 1000 * (i as u64 + 1));
            c.state = if i % 2 == 0 { 1 } else { 3 };
            t.insert(c).unwrap();
        }
        assert!(t.insert(conn(9, Forward::Nat, 9000)).is_err(), "full");
        let mut evicted = Vec::new();
        assert!(t.evict_one(|c| c.state == 3, |tb, i| evicted.push(tb.get(i).cport)));
        assert_eq!(evicted.len(), 1);
        let first = evicted[0];
        assert!(
            t.insert(conn(9, Forward::Nat, 9000)).is_ok(),
            "room for the new one"
        );
        assert!(t.evict_one(|c| c.state == 3, |tb, i| evicted.push(tb.get(i).cport)));
        assert_ne!(evicted[1], first);
        assert!(
            !t.evict_one(|c| c.state == 3, |_, _| {}),
            "no evictable entry left"
        );
        // The timers of the others are intact: everything expires, exactly once.
        assert!(t.insert(conn(10, Forward::Dr, 500)).is_ok());
        let mut expired = 0;
        t.advance(20_000, |_, _| {
            expired += 1;
            None
        });
        assert_eq!(expired, 4, "two established, the new one and the DR one");
        assert!(t.is_empty());
    }

    #[test]
    fn expiry_removes_due_entries_only_and_frees_their_slots() {
        let mut t = ConnTable::new(8, 3);
        t.insert(conn(1, Forward::Nat, 1_000)).unwrap();
        let keep = t.insert(conn(2, Forward::Nat, 500_000)).unwrap();
        assert_eq!(t.advance(999, |_, _| None), 0);
        assert_eq!(t.advance(1_100, |_, _| None), 1);
        assert_eq!(t.len(), 1);
        // Refreshing an entry is a store: the wheel moves it when its old slot comes round.
        t.get_mut(keep).expires = 900_000;
        assert_eq!(t.advance(600_000, |_, _| None), 0);
        assert_eq!(t.advance(900_100, |_, _| None), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn many_inserts_and_deletes_keep_every_live_key_findable() {
        // Backward-shift deletion under heavy churn in a small table.
        let mut t = ConnTable::new(256, 11);
        let mut live = std::collections::BTreeMap::new();
        let mut now = 0u64;
        for round in 0..40u32 {
            for i in 0..200u32 {
                let id = round * 1000 + i;
                if t.len() < t.capacity() {
                    let c = conn(
                        id,
                        if id % 3 == 0 { Forward::Dr } else { Forward::Nat },
                        now + 100 * (1 + (id % 7) as u64),
                    );
                    t.insert(c).unwrap();
                    live.insert(id, c);
                }
            }
            now += 300;
            t.advance(now, |_, _| None);
            live.retain(|_, c| c.expires > now);
            assert_eq!(t.len(), live.len());
            for c in live.values() {
                let k = c.key(KeyKind::In);
                assert!(t.lookup(&k).is_some(), "live entry lost in round {round}");
                // A NAT entry's reply finds it by its out key (a second slot, moved by the
                // same deletions).
                let found = t.lookup(&c.key(KeyKind::Out)).map(|(_, kind)| kind);
                let want = (c.forward == Forward::Nat).then_some(KeyKind::Out);
                assert_eq!(found, want, "reply key in round {round}");
            }
            // And what expired is found by neither key.
            for id in (round * 1000)..(round * 1000 + 200) {
                if !live.contains_key(&id) {
                    let k = conn(id, Forward::Nat, 0).key(KeyKind::In);
                    assert!(t.lookup(&k).is_none(), "expired entry {id} still found");
                }
            }
        }
    }

    #[test]
    fn a_slot_holds_tag_kind_and_entry_apart_at_every_capacity() {
        for capacity in [1usize, 2, 3, 255, 256, 257, 1 << 20, (1 << 29) + 5] {
            let l = SlotLayout::new(capacity);
            assert_eq!(l.idx & l.out, 0);
            assert_eq!(l.idx | l.out | l.tag, u32::MAX, "{capacity}");
            assert!(
                l.idx as usize >= capacity,
                "every entry number fits below all ones"
            );
            for idx in [0, capacity as u32 - 1] {
                for kind in [KeyKind::In, KeyKind::Out] {
                    let s = l.slot(0xdead_beef, kind, idx);
                    assert_ne!(s, EMPTY, "{capacity} {idx}");
                    assert_eq!((l.entry(s), l.kind(s)), (idx, kind));
                    assert_eq!(s & !l.idx, l.key(0xdead_beef, kind));
                }
            }
        }
    }
}
