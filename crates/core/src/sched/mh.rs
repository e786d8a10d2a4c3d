//! Maglev hashing (IPVS `ip_vs_mh.c`, after the Maglev paper, NSDI 2016).
//!
//! Each server has a preference list over the M slots of a lookup table, the permutation
//! `(offset + j * skip) mod M` with `offset = h1(server) mod M` and `skip = h2(server) mod
//! (M - 1) + 1`; M is prime, so every list visits every slot. Servers take turns claiming their
//! next preferred free slot until the table is full, a server of weight w taking w/gcd turns
//! per round. The result: every server holds its weighted share of slots to within one slot,
//! and when a server comes or goes most slots keep their server. The client address (and port,
//! with `mh-port`) hashes to a slot: a lookup is a hash and an array index.
//!
//! rvs differs from IPVS in one deliberate way: servers are placed in (address, port) order,
//! not configuration order, and hashed by address and port with fixed keys, so that the same
//! servers give the same table whatever order they were added in, on every director. That is
//! what lets directors behind ECMP agree on a real server without talking to each other.

use super::{available, hash_addr, SchedFlags};
use crate::real::{RealRegistry, RealServer};

/// The Maglev paper's table size: a prime over 100 times the servers of most services.
pub const DEFAULT_TABLE_SIZE: usize = 65537;

/// Slots hold server indexes as u16 (a service has far fewer than 65,535 servers): the table
/// of 65,537 slots takes 128 KiB a service, not 256.
const EMPTY: u16 = u16::MAX;

/// The most servers (of weight above 0) a Maglev table places.
pub const MAX_SERVERS: usize = EMPTY as usize - 1;

#[derive(Debug)]
pub struct Maglev {
    table: Vec<u16>,
    flags: SchedFlags,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Maglev {
    /// Builds the lookup table of prime size `m` for `reals` (servers of weight 0 get no slot).
    pub fn new(reals: &[RealServer], flags: SchedFlags, m: usize) -> Maglev {
        let mut order: Vec<usize> = (0..reals.len()).filter(|&i| reals[i].weight > 0).collect();
        order.sort_by_key(|&i| (reals[i].addr, reals[i].port));
        // Servers beyond what a slot can name get none (Scheduler::new refuses such a service).
        order.truncate(MAX_SERVERS);
        let mut table = vec![EMPTY; m];
        if order.is_empty() || m < 2 {
            return Maglev {
                table: Vec::new(),
                flags,
            };
        }
        let g = order.iter().map(|&i| reals[i].weight as u64).fold(0, gcd);
        // Per server: next candidate slot, skip, turns per round.
        let mut perm: Vec<(usize, usize, u64)> = order
            .iter()
            .map(|&i| {
                let r = &reals[i];
                let offset = (hash_addr(r.addr, r.port, 1) % m as u64) as usize;
                let skip = (hash_addr(r.addr, r.port, 2) % (m as u64 - 1)) as usize + 1;
                (offset, skip, r.weight as u64 / g)
            })
            .collect();
        let mut filled = 0;
        'fill: loop {
            for (k, &idx) in order.iter().enumerate() {
                for _ in 0..perm[k].2 {
                    let (ref mut next, skip, _) = perm[k];
                    while table[*next] != EMPTY {
                        *next += skip;
                        if *next >= m {
                            *next -= m;
                        }
                    }
                    table[*next] = idx as u16;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
        Maglev { table, flags }
    }

    pub fn table_size(&self) -> usize {
        self.table.len()
    }

    /// The server index at each slot (for tests and diagnostics).
    pub fn slots(&self) -> &[u16] {
        &self.table
    }

    /// Bytes the lookup table takes.
    pub fn memory_bytes(&self) -> usize {
        self.table.len() * std::mem::size_of::<u16>()
    }

    pub fn pick(&self, reals: &[RealServer], reg: &RealRegistry, flow: &super::FlowInfo) -> Option<usize> {
        let m = self.table.len() as u64;
        if m == 0 {
            return None;
        }
        let port = if self.flags.port { flow.client_port } else { 0 };
        let tries = if self.flags.fallback { m } else { 1 };
        (0..tries)
            .map(|attempt| self.table[(hash_addr(flow.client, port, 3 + attempt) % m) as usize] as usize)
            .find(|&i| i < reals.len() && available(&reals[i], reg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::RealId;
    use crate::sched::testutil::{flow, reals};

    fn counts(t: &Maglev, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &s in t.slots() {
            c[s as usize] += 1;
        }
        c
    }

    #[test]
    fn equal_weights_share_slots_to_within_one() {
        let r = reals(&vec![1; 100]);
        let t = Maglev::new(&r, SchedFlags::default(), DEFAULT_TABLE_SIZE);
        let c = counts(&t, 100);
        let (max, min) = (*c.iter().max().unwrap(), *c.iter().min().unwrap());
        assert!(max - min <= 1, "max {max} min {min}");
        assert!((max - min) as f64 / DEFAULT_TABLE_SIZE as f64 <= 0.01);
    }

    #[test]
    fn weights_are_respected() {
        let r = reals(&[1, 2, 3]);
        let t = Maglev::new(&r, SchedFlags::default(), DEFAULT_TABLE_SIZE);
        let c = counts(&t, 3);
        for (i, want) in [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0].iter().enumerate() {
            let got = c[i] as f64 / DEFAULT_TABLE_SIZE as f64;
            assert!((got - want).abs() < 0.001, "server {i}: {got} vs {want}");
        }
        assert_eq!(
            counts(&Maglev::new(&reals(&[1, 0, 1]), SchedFlags::default(), 251), 3)[1],
            0
        );
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let r = reals(&[1, 2, 1, 3, 1, 1, 2]);
        let mut shuffled = r.clone();
        shuffled.reverse();
        shuffled.swap(1, 4);
        let a = Maglev::new(&r, SchedFlags::default(), DEFAULT_TABLE_SIZE);
        let b = Maglev::new(&shuffled, SchedFlags::default(), DEFAULT_TABLE_SIZE);
        let addr = |rs: &[RealServer], t: &Maglev| -> Vec<std::net::IpAddr> {
            t.slots().iter().map(|&i| rs[i as usize].addr).collect()
        };
        assert_eq!(addr(&r, &a), addr(&shuffled, &b));
    }

    /// Removing one of N servers moves that server's slots, plus only a small fraction of the
    /// others'. Measured here: see the bound asserted.
    #[test]
    fn removing_a_server_moves_little_else() {
        for n in [10usize, 100, 1000] {
            let r = reals(&vec![1; n]);
            let before = Maglev::new(&r, SchedFlags::default(), DEFAULT_TABLE_SIZE);
            let gone = n / 3;
            let rest: Vec<RealServer> = r
                .iter()
                .filter(|x| x.id != RealId(gone as u32))
                .cloned()
                .collect();
            let after = Maglev::new(&rest, SchedFlags::default(), DEFAULT_TABLE_SIZE);
            let moved_others = before
                .slots()
                .iter()
                .zip(after.slots())
                .filter(|&(&b, &a)| b as usize != gone && r[b as usize].id != rest[a as usize].id)
                .count();
            let frac = moved_others as f64 / DEFAULT_TABLE_SIZE as f64;
            assert!(
                frac < 0.015,
                "n={n}: {:.3}% of slots of remaining servers moved",
                frac * 100.0
            );
        }
    }

    #[test]
    fn lookups_are_stable_and_fallback_needs_the_flag() {
        let r = reals(&[1, 1, 1]);
        let reg = RealRegistry::new(8);
        let plain = Maglev::new(&r, SchedFlags::default(), 251);
        let client = (0..1000u32)
            .map(|c| 0x0a01_0000 + c)
            .find(|&c| plain.pick(&r, &reg, &flow(c, 1)) == Some(1))
            .unwrap();
        assert_eq!(
            plain.pick(&r, &reg, &flow(client, 9)),
            Some(1),
            "port ignored without mh-port"
        );
        let mut quiesced = r.clone();
        quiesced[1].weight = 0;
        assert_eq!(plain.pick(&quiesced, &reg, &flow(client, 1)), None);
        let fb = Maglev::new(
            &r,
            SchedFlags {
                fallback: true,
                port: false,
            },
            251,
        );
        let alt = fb.pick(&quiesced, &reg, &flow(client, 1)).unwrap();
        assert_ne!(alt, 1);
        assert_eq!(fb.pick(&quiesced, &reg, &flow(client, 1)), Some(alt));
        let by_port = Maglev::new(
            &r,
            SchedFlags {
                fallback: false,
                port: true,
            },
            251,
        );
        let picks: std::collections::BTreeSet<_> = (0..60)
            .map(|p| by_port.pick(&r, &reg, &flow(client, p)).unwrap())
            .collect();
        assert_eq!(picks.len(), 3, "mh-port spreads one client's connections");
    }
}
