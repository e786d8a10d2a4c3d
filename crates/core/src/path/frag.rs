//! IP fragments of TCP and UDP, followed without reassembly.
//!
//! Only a datagram's first fragment carries the ports, so it alone is looked up (and
//! scheduled) as any packet is; what was done to it (NAT of the source or destination, the
//! tunnel, the next hop, up to the host, or the drop) is remembered under the datagram's
//! identity (addresses, protocol, IP id) and done again to every later fragment, whose
//! transport bytes are never touched (an incremental checksum update in the first fragment
//! covers the whole datagram).
//!
//! Every fragment of a datagram is first steered to one worker, its "home", by a hash of that
//! identity (the same wherever it arrives); the home handles the first fragment (or hands it
//! to the flow's owner, and then the later ones after it, in order, through the same ring).
//! Later fragments that come before their first are copied and held, a few and briefly, then
//! replayed when it comes. Everything is bounded per worker, every overflow a counted drop.

use std::collections::HashMap;
use std::net::IpAddr;

use super::family::{Family, IpInfo};
use super::{Director, Pkt, Verdict};
use crate::drop::DropReason;
use crate::frame::Frame;
use crate::model::RealId;
use crate::tables::Tables;

/// Datagrams a worker remembers at once.
pub const FRAG_ENTRIES: usize = 4096;
/// How long a datagram's entry lives after its last fragment.
pub const FRAG_TTL_MS: u64 = 2_000;
/// Later fragments a worker holds while their first is awaited, and for how long.
pub const FRAG_HOLD: usize = 64;
pub const FRAG_HOLD_MS: u64 = 500;

/// A datagram's identity: addresses, protocol and IP identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

impl FragKey {
    /// The key of a fragment whose IP header starts at `l2` in `frame`.
    fn of<A: Family>(ip: &IpInfo<A>, frame: &[u8], l2: usize) -> FragKey {
        FragKey {
            src: ip.src.ip(),
            dst: ip.dst.ip(),
            proto: ip.proto,
            id: A::frag_id(&frame[l2..]),
        }
    }

    /// The worker every fragment of the datagram goes to first (a hash of the identity, the same on every worker).
    fn home(&self, workers: u16) -> u16 {
        use std::hash::{Hash, Hasher};
        let mut h = crate::tables::KeyHasher::default();
        self.hash(&mut h);
        (h.finish() % workers as u64) as u16
    }
}

/// What was done to a datagram's first fragment, to do to the later ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// The first fragment went to another worker (the flow's owner): so do the rest.
    Steer(u16),
    /// Forwarded, with the source (NAT reply) or destination (NAT request) rewritten to
    /// `to`, or neither (DR); `real` is counted.
    Forward {
        port: u16,
        next_hop: IpAddr,
        rewrite: Rewrite,
        real: Option<(RealId, bool)>,
    },
    /// Carried in a tunnel to the real server.
    Tunnel {
        raddr: IpAddr,
        real: Option<RealId>,
    },
    ToHost {
        port: u16,
    },
    Drop(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    None,
    Src(IpAddr),
    Dst(IpAddr),
    /// FullNAT: both.
    Both(IpAddr, IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    action: Action,
    expires: u64,
}

/// A later fragment held for its first: its bytes and the port it came in on.
#[derive(Debug)]
struct Held {
    key: FragKey,
    port: u16,
    frame: Vec<u8>,
    until: u64,
}

/// A worker's fragment state: the datagrams it follows and the fragments it holds.
#[derive(Debug, Default)]
pub(crate) struct Frags {
    entries: HashMap<FragKey, Entry>,
    held: Vec<Held>,
    /// Held fragments whose first has come: to process again (see
    /// [`Director::take_released`]).
    released: Vec<(u16, Vec<u8>)>,
}

impl Director {
    /// The first fragment of a TCP/UDP datagram: steered to its home, then handled as any
    /// packet, and what was done to it remembered for the rest.
    #[cold]
    #[inline(never)]
    pub(super) fn first_fragment<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        p: Pkt<A>,
        hashes: (u32, u32),
    ) -> Verdict {
        let Pkt { l2, ip, now, .. } = p;
        let key = FragKey::of(&ip, f.data(), l2);
        if let Some(v) = self.steer_home(&key) {
            return v;
        }
        if !self.frags.room(&key, now) {
            return Verdict::Drop(DropReason::FragTableFull);
        }
        let v = self.ip(t, f, p, hashes);
        let action = match v {
            Verdict::Redirect { worker } => Action::Steer(worker),
            Verdict::Forward { port, next_hop } => self.forwarded(f, &p, port, next_hop),
            Verdict::ToHost { port, .. } => Action::ToHost { port },
            Verdict::Drop(r) => Action::Drop(r),
            // An ICMP error answering it (a tunnel's "too big"): the rest are dropped.
            Verdict::Reply { .. } | Verdict::Neighbor | Verdict::Held => Action::Drop(DropReason::Fragment),
        };
        self.frags.entries.insert(
            key,
            Entry {
                action,
                expires: now + FRAG_TTL_MS,
            },
        );
        self.stats.frag_first += 1;
        self.stats.frag_released += self.frags.release(&key);
        v
    }

    /// What the path did to a forwarded first fragment, read off the frame it left.
    /// (`p` is the packet as it came in: the frame has been rewritten since.)
    fn forwarded<A: Family, F: Frame>(&mut self, f: &F, p: &Pkt<A>, port: u16, next_hop: IpAddr) -> Action {
        let Pkt { l2, ip, l4, .. } = *p;
        let (src, dst) = (ip.src.ip(), ip.dst.ip());
        let Ok(out) = A::parse(&f.data()[l2..]) else {
            return Action::Drop(DropReason::Fragment);
        };
        // The connection it belongs to, for the real server's counters (a one-packet
        // service keeps none: its later fragments go uncounted).
        let tuple = crate::conn::Tuple {
            src: ip.src,
            dst: ip.dst,
            sport: l4.sport,
            dport: l4.dport,
            proto: ip.proto,
        };
        let conn = A::table(self)
            .lookup(&tuple)
            .map(|(i, kind)| (A::table(self).get(i).real, kind != crate::conn::KeyKind::Out));
        if out.proto != ip.proto {
            // Encapsulated: the outer destination is the real server.
            return Action::Tunnel {
                raddr: out.dst.ip(),
                real: conn.map(|c| c.0),
            };
        }
        let rewrite = if out.src.ip() != src && out.dst.ip() != dst {
            Rewrite::Both(out.src.ip(), out.dst.ip())
        } else if out.src.ip() != src {
            Rewrite::Src(out.src.ip())
        } else if out.dst.ip() != dst {
            Rewrite::Dst(out.dst.ip())
        } else {
            Rewrite::None
        };
        Action::Forward {
            port,
            next_hop,
            rewrite,
            real: conn,
        }
    }

    /// A later fragment of a TCP/UDP datagram: done as its first fragment was, held if that
    /// has not come yet.
    #[cold]
    #[inline(never)]
    pub(super) fn later_fragment<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        p: Pkt<A>,
    ) -> Verdict {
        let Pkt {
            port, l2, ip, now, ..
        } = p;
        let key = FragKey::of(&ip, f.data(), l2);
        if let Some(v) = self.steer_home(&key) {
            return v;
        }
        let action = match self.frags.entries.get_mut(&key) {
            Some(e) if e.expires > now => {
                e.expires = now + FRAG_TTL_MS;
                e.action
            }
            _ => {
                return self
                    .frags
                    .hold(key, port, f.data(), now, &mut self.stats.frag_held)
            }
        };
        self.stats.frag_followed += 1;
        match action {
            Action::Steer(worker) => Verdict::Redirect { worker },
            Action::ToHost { port } => Verdict::ToHost { port, learn: false },
            Action::Drop(r) => Verdict::Drop(r),
            Action::Tunnel { raddr, real } => {
                let Some(raddr) = A::from_ip(raddr) else {
                    return Verdict::Drop(DropReason::Fragment);
                };
                if let Some(r) = real {
                    self.account(r, true, ip.end);
                }
                self.tunnel::<A, F>(t, f, &p, raddr)
            }
            Action::Forward {
                port,
                next_hop,
                rewrite,
                real,
            } => {
                let b = f.data_mut();
                match rewrite {
                    Rewrite::None => {}
                    Rewrite::Src(a) | Rewrite::Dst(a) => {
                        if ip.ttl <= 1 {
                            return Verdict::Drop(DropReason::TtlExceeded);
                        }
                        let (is_src, old) = match rewrite {
                            Rewrite::Src(_) => (true, ip.src),
                            _ => (false, ip.dst),
                        };
                        let Some(new) = A::from_ip(a) else {
                            return Verdict::Drop(DropReason::Fragment);
                        };
                        A::nat_header(&mut b[l2..], is_src, old, new);
                    }
                    Rewrite::Both(s, d) => {
                        if ip.ttl <= 1 {
                            return Verdict::Drop(DropReason::TtlExceeded);
                        }
                        let (Some(s), Some(d)) = (A::from_ip(s), A::from_ip(d)) else {
                            return Verdict::Drop(DropReason::Fragment);
                        };
                        A::nat_header(&mut b[l2..], true, ip.src, s);
                        A::set_dst(&mut b[l2..], d);
                    }
                }
                let Some(p) = t.net.ports.get(port as usize) else {
                    return Verdict::Drop(DropReason::NoRoute);
                };
                super::flow::set_src_mac(b, p.mac);
                if let Some((r, inbound)) = real {
                    self.account(r, inbound, ip.end);
                }
                Verdict::Forward { port, next_hop }
            }
        }
    }

    /// With several workers, a fragment not yet at its datagram's home goes there (a frame
    /// already steered, `steered`, is handled where it is).
    fn steer_home(&self, key: &FragKey) -> Option<Verdict> {
        if self.cfg.workers <= 1 || self.steered {
            return None;
        }
        let home = key.home(self.cfg.workers);
        (home != self.worker()).then_some(Verdict::Redirect { worker: home })
    }

    /// Drops every held fragment, counted as timed out (the worker stops: their first will
    /// not come).
    pub fn drop_held(&mut self) {
        for _ in self.frags.held.drain(..) {
            self.drops.count(DropReason::FragTimeout);
        }
    }

    /// Fragments held for their first, now to be processed again (as steered frames), each
    /// with the port it came in on.
    pub fn take_released(&mut self) -> Vec<(u16, Vec<u8>)> {
        std::mem::take(&mut self.frags.released)
    }

    pub fn has_released(&self) -> bool {
        !self.frags.released.is_empty()
    }

    /// Processes a frame another worker steered here (it is not steered again).
    pub fn process_steered<F: Frame>(&mut self, t: &Tables, port: u16, frame: &mut F, now: u64) -> Verdict {
        self.steered = true;
        let v = self.process(t, port, frame, now);
        self.steered = false;
        v
    }

    /// Drops held fragments whose first did not come in time (counted), and forgets
    /// datagrams not seen for a while. Called from [`Director::advance`].
    pub(super) fn expire_fragments(&mut self, now: u64, sweep: bool) {
        if !self.frags.held.is_empty() {
            let before = self.frags.held.len();
            self.frags.held.retain(|h| h.until > now);
            for _ in self.frags.held.len()..before {
                self.drops.count(DropReason::FragTimeout);
            }
        }
        if sweep && !self.frags.entries.is_empty() {
            self.frags.entries.retain(|_, e| e.expires > now);
        }
    }
}

impl Frags {
    /// Is there room for `key`'s entry (expired ones are swept when the table is full)?
    fn room(&mut self, key: &FragKey, now: u64) -> bool {
        if self.entries.len() < FRAG_ENTRIES || self.entries.contains_key(key) {
            return true;
        }
        self.entries.retain(|_, e| e.expires > now);
        self.entries.len() < FRAG_ENTRIES
    }

    fn hold(&mut self, key: FragKey, port: u16, frame: &[u8], now: u64, held: &mut u64) -> Verdict {
        if self.held.len() >= FRAG_HOLD {
            return Verdict::Drop(DropReason::FragHoldFull);
        }
        self.held.push(Held {
            key,
            port,
            frame: frame.to_vec(),
            until: now + FRAG_HOLD_MS,
        });
        *held += 1;
        Verdict::Held
    }

    /// Moves the fragments held for `key` to the released list, in their order of arrival;
    /// how many.
    fn release(&mut self, key: &FragKey) -> u64 {
        let mut n = 0;
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].key == *key {
                let h = self.held.remove(i);
                self.released.push((h.port, h.frame));
                n += 1;
            } else {
                i += 1;
            }
        }
        n
    }
}
