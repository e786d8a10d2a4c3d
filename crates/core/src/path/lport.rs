//! FullNAT's local ports, per worker and without a lock.
//!
//! A FullNAT connection goes to its real server from `laddr:lport`, and the server's replies
//! come back to that address and port. Each worker owns the ports of each local address
//! whose reply would be steered to it ([`super::owner_of`] of the local address and port: the
//! function the software steering uses, and that a NIC's flow rules would mirror), so a reply
//! needs no redirect and no two workers ever hand out the same port: no lock, no shared
//! state. A worker builds its share of an address's ports the first time a connection needs
//! one (once per address and protocol, off the established path).
//!
//! Ports are handed out first in, first out: a port comes back into use as late as possible,
//! after the server's side of its last connection has long left TIME_WAIT. A port a synced
//! connection holds (installed on a backup) is marked taken, and skipped when its turn comes.
//! When a worker's share runs out, the new connection is a counted drop: a live tuple is never
//! reused.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::net::IpAddr;

use crate::tables::KeyHasher;

/// The local ports FullNAT uses: above the well-known and registered ones a server might
/// expect a client never to use (DPVS's default range too).
pub const LPORT_MIN: u16 = 1025;
pub const LPORT_MAX: u16 = 65535;

/// One worker's share of one local address's ports, for one protocol.
#[derive(Debug)]
struct Share {
    free: VecDeque<u16>,
    /// One bit per port: handed out (or held by a synced connection).
    taken: Box<[u64; 1024]>,
    in_use: u32,
}

impl Share {
    fn new(laddr: IpAddr, proto: u8, worker: u16, workers: u16) -> Share {
        let free: VecDeque<u16> = (LPORT_MIN..=LPORT_MAX)
            .filter(|&p| workers <= 1 || super::owner_of(proto, laddr, p, workers) == worker)
            .collect();
        Share {
            free,
            taken: Box::new([0; 1024]),
            in_use: 0,
        }
    }

    #[inline]
    fn is_taken(&self, p: u16) -> bool {
        self.taken[p as usize / 64] & (1 << (p % 64)) != 0
    }

    #[inline]
    fn set(&mut self, p: u16, on: bool) {
        let (w, b) = (p as usize / 64, 1u64 << (p % 64));
        if on {
            self.taken[w] |= b;
        } else {
            self.taken[w] &= !b;
        }
    }

    fn take(&mut self) -> Option<u16> {
        while let Some(p) = self.free.pop_front() {
            if !self.is_taken(p) {
                self.set(p, true);
                self.in_use += 1;
                return Some(p);
            }
        }
        None
    }
}

/// A worker's local ports: its share of every (local address, protocol) it has used.
#[derive(Debug, Default)]
pub struct LocalPorts {
    shares: HashMap<(IpAddr, u8), Share, BuildHasherDefault<KeyHasher>>,
    /// Which local address the next connection tries first (round robin over a service's).
    next: usize,
}

/// What [`LocalPorts::take`] could not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPort {
    /// The service has no local address of the connection's family.
    NoAddress,
    /// Every port of every local address this worker owns is in use.
    Exhausted,
}

impl LocalPorts {
    /// A local address of `laddrs` (of `v6`'s family) and a port of this worker's share of it:
    /// the addresses are tried in turn from where the last connection left off.
    pub fn take(
        &mut self,
        laddrs: &[IpAddr],
        v6: bool,
        proto: u8,
        worker: u16,
        workers: u16,
    ) -> Result<(IpAddr, u16), NoPort> {
        let n = laddrs.len();
        let mut any = false;
        for i in 0..n {
            let a = laddrs[(self.next + i) % n];
            if a.is_ipv6() != v6 {
                continue;
            }
            any = true;
            let share = self
                .shares
                .entry((a, proto))
                .or_insert_with(|| Share::new(a, proto, worker, workers));
            if let Some(p) = share.take() {
                self.next = (self.next + i + 1) % n;
                return Ok((a, p));
            }
        }
        // An address of the family was there: its ports ran out.
        Err(if any { NoPort::Exhausted } else { NoPort::NoAddress })
    }

    /// Gives a port back (its connection ended): it goes to the end of the line.
    pub fn release(&mut self, laddr: IpAddr, proto: u8, port: u16) {
        if let Some(s) = self.shares.get_mut(&(laddr, proto)) {
            if s.is_taken(port) {
                s.set(port, false);
                s.in_use -= 1;
                s.free.push_back(port);
            }
        }
    }

    /// Marks a port taken by a connection made elsewhere (a synced one): no new connection
    /// gets it until that one ends. False if it was taken already.
    pub fn hold(&mut self, laddr: IpAddr, proto: u8, port: u16, worker: u16, workers: u16) -> bool {
        let s = self
            .shares
            .entry((laddr, proto))
            .or_insert_with(|| Share::new(laddr, proto, worker, workers));
        if s.is_taken(port) {
            return false;
        }
        s.set(port, true);
        s.in_use += 1;
        true
    }

    /// Ports in use, over every address and protocol.
    pub fn in_use(&self) -> u64 {
        self.shares.values().map(|s| s.in_use as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 2, 0, 10));

    #[test]
    fn two_workers_share_the_ports_and_each_owns_its_replies() {
        let (mut a, mut b) = (LocalPorts::default(), LocalPorts::default());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let (la, pa) = a.take(&[LIP], false, 6, 0, 2).unwrap();
            let (lb, pb) = b.take(&[LIP], false, 6, 1, 2).unwrap();
            assert_eq!(super::super::owner_of(6, la, pa, 2), 0);
            assert_eq!(super::super::owner_of(6, lb, pb, 2), 1);
            assert!(seen.insert(pa) && seen.insert(pb), "no port handed out twice");
        }
    }

    #[test]
    fn exhaustion_is_an_error_and_a_released_port_comes_back_last() {
        let mut w = LocalPorts::default();
        let n = (LPORT_MAX - LPORT_MIN) as usize + 1;
        let first = w.take(&[LIP], false, 17, 0, 1).unwrap().1;
        for _ in 1..n {
            w.take(&[LIP], false, 17, 0, 1).unwrap();
        }
        assert_eq!(w.take(&[LIP], false, 17, 0, 1), Err(NoPort::Exhausted));
        assert_eq!(w.in_use(), n as u64);
        w.release(LIP, 17, first);
        assert_eq!(w.take(&[LIP], false, 17, 0, 1), Ok((LIP, first)));
        // Another protocol has ports of its own; another family has no address.
        assert!(w.take(&[LIP], false, 6, 0, 1).is_ok());
        assert_eq!(w.take(&[LIP], true, 6, 0, 1), Err(NoPort::NoAddress));
    }

    #[test]
    fn a_held_port_is_skipped_until_released() {
        let mut w = LocalPorts::default();
        assert!(w.hold(LIP, 6, LPORT_MIN, 0, 1));
        assert!(!w.hold(LIP, 6, LPORT_MIN, 0, 1));
        assert_eq!(w.take(&[LIP], false, 6, 0, 1).unwrap().1, LPORT_MIN + 1);
        w.release(LIP, 6, LPORT_MIN);
        // Released twice (a stale copy in the line) is still handed out once.
        w.release(LIP, 6, LPORT_MIN);
        assert_eq!(w.in_use(), 1);
    }

    #[test]
    fn addresses_are_used_in_turn() {
        let l2: IpAddr = "10.2.0.11".parse().unwrap();
        let mut w = LocalPorts::default();
        let a = w.take(&[LIP, l2], false, 6, 0, 1).unwrap().0;
        let b = w.take(&[LIP, l2], false, 6, 0, 1).unwrap().0;
        assert_ne!(a, b);
    }
}
