//! Persistence templates shared by every worker (IPVS's templates, `-p` and `-M`).
//!
//! IPVS promises one real server per client (per netmask) for a template's lifetime, whichever
//! core a packet arrives on. Flows are owned by worker by client address *and port*, so the
//! connections of one client land on several workers: the template that binds the client to
//! its real server cannot live in one worker's table. It lives here: a fixed-size open-
//! addressing table that every worker reads and writes with atomics, never a lock.
//!
//! - **Slots** are seqlocks: a writer claims a slot by moving its sequence from even to odd
//!   (compare-and-swap), writes, and releases it even again; a reader retries if the sequence
//!   moved under it. Two workers that make the first connection of one client at the same
//!   instant race for the slot: one claims it, the other finds the winner's binding and uses
//!   its real server.
//! - **Expiry** is a time in the slot. A live connection under a template keeps it alive (each
//!   of its packets pushes the expiry to at least the connection's own, and to the persistence
//!   timeout from now), as IPVS re-arms a template while it controls connections. An expired
//!   slot is free: it is reclaimed by whoever claims it next, or by the workers' sweep.
//! - **Counts**: a real server's persistent count (`ipvsadm -L --persistent-conn`) goes up when
//!   a template is made for it and down when the one claim that reclaims it succeeds.

use std::net::IpAddr;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::model::{RealId, RealRegistry};

/// What a template binds: the masked client, to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateKey {
    pub proto: u8,
    pub client: IpAddr,
    pub vaddr: IpAddr,
    pub vport: u16,
}

/// A live template as listings and sync see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateView {
    pub key: TemplateKey,
    pub real: RealId,
    pub expires: u64,
    pub persist_s: u32,
}

/// The table is full: no template could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplatesFull;

fn words(a: IpAddr) -> (u64, u64, u64) {
    match a {
        IpAddr::V4(v) => (u32::from(v) as u64, 0, 0),
        IpAddr::V6(v) => {
            let x = u128::from(v);
            ((x >> 64) as u64, x as u64, 1)
        }
    }
}

fn addr(hi: u64, lo: u64, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(((hi as u128) << 64 | lo as u128).into())
    } else {
        IpAddr::V4((hi as u32).into())
    }
}

impl TemplateKey {
    /// The key as five words: client, vaddr, and protocol/port/families.
    fn packed(&self) -> [u64; 5] {
        let (c0, c1, c6) = words(self.client);
        let (v0, v1, v6) = words(self.vaddr);
        [
            c0,
            c1,
            v0,
            v1,
            self.proto as u64 | (self.vport as u64) << 8 | c6 << 24 | v6 << 25 | 1 << 26,
        ]
    }

    fn unpack(k: [u64; 5]) -> TemplateKey {
        TemplateKey {
            proto: k[4] as u8,
            vport: (k[4] >> 8) as u16,
            client: addr(k[0], k[1], k[4] >> 24 & 1 == 1),
            vaddr: addr(k[2], k[3], k[4] >> 25 & 1 == 1),
        }
    }

    fn hash(&self, seed: u64) -> u64 {
        let mut h = seed;
        for w in self.packed() {
            h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        h
    }
}

#[derive(Debug, Default)]
struct Slot {
    seq: AtomicU32,
    real: AtomicU32,
    persist_s: AtomicU32,
    /// When the sync daemon last sent it (seconds + 1; 0: never).
    synced_s: AtomicU32,
    /// Milliseconds; 0 for a slot never used.
    expires: AtomicU64,
    /// The packed key; word 4 is 0 for a slot never used.
    key: [AtomicU64; 5],
}

/// How many slots a lookup or a claim probes before giving up.
const PROBES: usize = 32;
/// Spins of a read waiting for a writer to finish (a writer holds a slot for a few stores).
const READ_TRIES: usize = 4096;

#[derive(Debug)]
pub struct PersistTable {
    slots: Box<[Slot]>,
    mask: usize,
    seed: u64,
    sweep_at: AtomicUsize,
}

/// One consistent read of a slot: (key, real, expires, persist_s), or None if a writer kept
/// changing it.
type Read = Option<([u64; 5], u32, u64, u32)>;
/// The same with the (even) sequence it was read at.
type SeqRead = Option<(u32, [u64; 5], u32, u64, u32)>;

impl PersistTable {
    /// A table for about `capacity` live templates (twice the slots, a power of two).
    pub fn new(capacity: usize, seed: u64) -> PersistTable {
        let n = (capacity.max(16) * 2).next_power_of_two();
        PersistTable {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
            seed,
            sweep_at: AtomicUsize::new(0),
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>()
    }

    fn read(&self, i: usize) -> Read {
        self.read_seq(i).map(|(_, k, r, e, p)| (k, r, e, p))
    }

    fn read_seq(&self, i: usize) -> SeqRead {
        let s = &self.slots[i];
        for _ in 0..READ_TRIES {
            let q = s.seq.load(Ordering::Acquire);
            if q & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let key = std::array::from_fn(|k| s.key[k].load(Ordering::Relaxed));
            let real = s.real.load(Ordering::Relaxed);
            let expires = s.expires.load(Ordering::Relaxed);
            let persist = s.persist_s.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if s.seq.load(Ordering::Relaxed) == q {
                return Some((q, key, real, expires, persist));
            }
        }
        None
    }

    /// The live binding of `key`: its slot and real server.
    pub fn lookup(&self, key: &TemplateKey, now: u64) -> Option<(u32, RealId)> {
        let want = key.packed();
        let h = key.hash(self.seed) as usize;
        for p in 0..PROBES {
            let i = (h + p) & self.mask;
            let (k, real, expires, _) = self.read(i)?;
            if k[4] == 0 {
                return None; // never used: the probe run ends here
            }
            if k == want && expires > now && real != u32::MAX {
                return Some((i as u32, RealId(real)));
            }
        }
        None
    }

    /// Binds `key` to `real` unless a live binding exists (then that one is returned: a
    /// worker that raced this one won). A fresh template counts in `real`'s persistent count;
    /// an expired one reclaimed here leaves its old real server's.
    pub fn claim(
        &self,
        key: &TemplateKey,
        real: RealId,
        persist_s: u32,
        now: u64,
        reg: &RealRegistry,
    ) -> Result<(u32, RealId), TemplatesFull> {
        let want = key.packed();
        let h = key.hash(self.seed) as usize;
        // Scan the whole probe run for a live binding of the key first, remembering the first
        // free slot; then claim that slot. Two workers binding one client at once aim at the
        // same first free slot: one wins, the other scans again and finds its binding.
        for _ in 0..64 {
            let mut free: Option<(usize, u32, [u64; 5], u32)> = None;
            for p in 0..PROBES {
                let i = (h + p) & self.mask;
                // A slot being written may be getting this very key: wait for it, never skip.
                let Some((q, k, old_real, expires, _)) = self.read_seq(i) else {
                    // A writer stalled mid-write (preempted): try the round again.
                    free = None;
                    break;
                };
                let live = k[4] != 0 && expires > now && old_real != u32::MAX;
                if live && k == want {
                    return Ok((i as u32, RealId(old_real)));
                }
                if !live && free.is_none() {
                    free = Some((i, q, k, old_real));
                }
                if k[4] == 0 {
                    break; // never used: the probe run ends here
                }
            }
            let Some((i, q, k, old_real)) = free else {
                continue;
            };
            // (64 rounds: each lost race means another worker bound a slot of this run.)
            let s = &self.slots[i];
            if s.seq
                .compare_exchange(q, q + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue; // another worker took it first: look again
            }
            for (w, v) in s.key.iter().zip(want) {
                w.store(v, Ordering::Relaxed);
            }
            s.real.store(real.0, Ordering::Relaxed);
            s.persist_s.store(persist_s, Ordering::Relaxed);
            s.synced_s.store(0, Ordering::Relaxed);
            s.expires.store(now + persist_s as u64 * 1000, Ordering::Relaxed);
            s.seq.store(q + 2, Ordering::Release);
            if k[4] != 0 && old_real != u32::MAX {
                reg.get(RealId(old_real))
                    .persistent
                    .fetch_sub(1, Ordering::Relaxed);
            }
            reg.get(real).persistent.fetch_add(1, Ordering::Relaxed);
            return Ok((i as u32, real));
        }
        Err(TemplatesFull)
    }

    /// A packet of a connection under the template in `slot` (whose key hashed to `tag`):
    /// the template lives at least until `until`. Writes only when that moves it by more than
    /// a second, so a busy connection costs a load per packet.
    #[inline]
    pub fn keep_alive(&self, slot: u32, until: u64) {
        let Some(s) = self.slots.get(slot as usize) else {
            return;
        };
        if s.expires.load(Ordering::Relaxed) + 1000 < until {
            s.expires.fetch_max(until, Ordering::Relaxed);
        }
    }

    /// Sets the binding of `key` (a record from the sync master): updated in place if there,
    /// made otherwise. Ok(true) if made.
    pub fn install(
        &self,
        key: &TemplateKey,
        real: RealId,
        persist_s: u32,
        expires: u64,
        now: u64,
        reg: &RealRegistry,
    ) -> Result<bool, TemplatesFull> {
        let (slot, bound) = match self.lookup(key, now) {
            Some(x) => x,
            None => {
                let (slot, bound) = self.claim(key, real, persist_s, now, reg)?;
                let s = &self.slots[slot as usize];
                s.expires.fetch_max(expires, Ordering::Relaxed);
                if bound == real {
                    return Ok(true);
                }
                (slot, bound)
            }
        };
        let s = &self.slots[slot as usize];
        if bound != real {
            let q = s.seq.load(Ordering::Acquire);
            if q & 1 == 0
                && s.seq
                    .compare_exchange(q, q + 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                s.real.store(real.0, Ordering::Relaxed);
                s.seq.store(q + 2, Ordering::Release);
                reg.get(bound).persistent.fetch_sub(1, Ordering::Relaxed);
                reg.get(real).persistent.fetch_add(1, Ordering::Relaxed);
            }
        }
        s.expires.fetch_max(expires, Ordering::Relaxed);
        s.synced_s
            .store(((now / 1000) as u32).wrapping_add(1), Ordering::Relaxed);
        Ok(false)
    }

    /// Whether the template in `slot` is due to be sent by the sync daemon (never, or half
    /// its timeout ago); if so it is marked sent at `now_s` and its view returned.
    pub fn due_for_sync(&self, slot: u32, now_s: u32, now: u64) -> Option<TemplateView> {
        let s = self.slots.get(slot as usize)?;
        let (k, real, expires, persist) = self.read(slot as usize)?;
        if k[4] == 0 || expires <= now {
            return None;
        }
        let last = s.synced_s.load(Ordering::Relaxed);
        if last != 0 && now_s.saturating_sub(last) < persist / 2 {
            return None;
        }
        s.synced_s
            .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(TemplateView {
            key: TemplateKey::unpack(k),
            real: RealId(real),
            expires,
            persist_s: persist,
        })
    }

    /// Frees up to `n` expired templates, from a position shared by every caller (each call
    /// takes the next stretch of slots), releasing their real servers' persistent counts.
    pub fn sweep(&self, n: usize, now: u64, reg: &RealRegistry) -> usize {
        let from = self.sweep_at.fetch_add(n, Ordering::Relaxed);
        let mut freed = 0;
        for j in 0..n {
            let i = (from + j) & self.mask;
            let s = &self.slots[i];
            let q = s.seq.load(Ordering::Acquire);
            if q & 1 == 1 {
                continue;
            }
            let Some((k, real, expires, _)) = self.read(i) else {
                continue;
            };
            if k[4] == 0 || expires > now {
                continue;
            }
            if s.seq
                .compare_exchange(q, q + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // Stays in the probe run (not "never used"), but dead: expires 1, key kept.
            s.expires.store(1, Ordering::Relaxed);
            s.real.store(u32::MAX, Ordering::Relaxed);
            s.seq.store(q + 2, Ordering::Release);
            if real != u32::MAX {
                reg.get(RealId(real)).persistent.fetch_sub(1, Ordering::Relaxed);
                freed += 1;
            }
        }
        freed
    }

    /// Every live template (for listings and a full resend): not for the data path.
    pub fn live(&self, now: u64) -> Vec<TemplateView> {
        (0..self.slots.len())
            .filter_map(|i| {
                let (k, real, expires, persist_s) = self.read(i)?;
                (k[4] != 0 && expires > now && real != u32::MAX).then(|| TemplateView {
                    key: TemplateKey::unpack(k),
                    real: RealId(real),
                    expires,
                    persist_s,
                })
            })
            .collect()
    }

    pub fn len(&self, now: u64) -> usize {
        self.live(now).len()
    }

    pub fn is_empty(&self, now: u64) -> bool {
        self.len(now) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str) -> TemplateKey {
        TemplateKey {
            proto: 6,
            client: c.parse().unwrap(),
            vaddr: "10.0.0.1".parse().unwrap(),
            vport: 443,
        }
    }

    #[test]
    fn a_binding_is_found_until_it_expires_and_its_count_follows() {
        let reg = RealRegistry::new(8);
        let t = PersistTable::new(64, 1);
        let k = key("198.51.100.0");
        assert_eq!(t.lookup(&k, 0), None);
        let (slot, r) = t.claim(&k, RealId(3), 300, 0, &reg).unwrap();
        assert_eq!(r, RealId(3));
        assert_eq!(t.lookup(&k, 1000), Some((slot, RealId(3))));
        assert_eq!(reg.get(RealId(3)).persistent.load(Ordering::Relaxed), 1);
        // A second claim finds the first: one real server per client.
        assert_eq!(t.claim(&k, RealId(4), 300, 10, &reg).unwrap(), (slot, RealId(3)));
        t.keep_alive(slot, 600_000);
        assert!(t.lookup(&k, 500_000).is_some(), "kept alive by its connection");
        assert_eq!(t.lookup(&k, 600_001), None);
        assert_eq!(t.sweep(1 << 10, 600_001, &reg), 1);
        assert_eq!(reg.get(RealId(3)).persistent.load(Ordering::Relaxed), 0);
        // Reclaimed, bound anew.
        assert_eq!(t.claim(&k, RealId(4), 300, 700_000, &reg).unwrap().1, RealId(4));
        let v6 = TemplateKey {
            client: "2001:db8:c::".parse().unwrap(),
            vaddr: "2001:db8::1".parse().unwrap(),
            ..k
        };
        t.claim(&v6, RealId(5), 60, 700_000, &reg).unwrap();
        let mut live = t.live(700_001);
        live.sort_by_key(|v| v.real.0);
        assert_eq!(live.iter().map(|v| v.key).collect::<Vec<_>>(), vec![k, v6]);
    }

    #[test]
    fn racing_workers_agree_on_one_real_server_per_client() {
        let reg = std::sync::Arc::new(RealRegistry::new(64));
        let t = std::sync::Arc::new(PersistTable::new(4096, 7));
        let threads: Vec<_> = (0..4u32)
            .map(|w| {
                let (t, reg) = (t.clone(), reg.clone());
                std::thread::spawn(move || {
                    (0..2000u32)
                        .map(|c| {
                            let k = key(&format!("10.{}.{}.0", c >> 8, c & 255));
                            // A claim that finds no room is retried, as a client resends its SYN.
                            loop {
                                if let Ok((_, r)) = t.claim(&k, RealId(w), 300, 1, &reg) {
                                    break r;
                                }
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<Vec<RealId>> = threads.into_iter().map(|h| h.join().unwrap()).collect();
        for c in 0..2000 {
            let first = results[0][c];
            assert!(
                results.iter().all(|r| r[c] == first),
                "client {c}: {:?}",
                results.iter().map(|r| r[c]).collect::<Vec<_>>()
            );
        }
        let total: u32 = (0..4)
            .map(|w| reg.get(RealId(w)).persistent.load(Ordering::Relaxed))
            .sum();
        assert_eq!(total, 2000, "one template per client, counted once");
    }

    #[test]
    fn a_full_table_says_so() {
        let reg = RealRegistry::new(4);
        let t = PersistTable::new(16, 1);
        let mut full = 0;
        for c in 0..200u32 {
            if t.claim(
                &key(&format!("10.0.{}.{}", c >> 8, c & 255)),
                RealId(0),
                300,
                0,
                &reg,
            )
            .is_err()
            {
                full += 1;
            }
        }
        assert!(full > 0);
        assert_eq!(
            reg.get(RealId(0)).persistent.load(Ordering::Relaxed) as usize + full,
            200
        );
    }
}
