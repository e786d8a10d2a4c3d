//! The neighbor table (IP -> MAC) and the frames that ask for and teach it: ARP requests for
//! IPv4 next hops, neighbor solicitations for IPv6 ones.
//!
//! The table is shared by all workers as an immutable map behind an `ArcSwap`: a worker loads
//! it (no lock) once per poll loop; a learn replaces it (copy, insert, swap), which happens
//! only when a neighbor answers, not per packet. Static entries from the config are never
//! replaced.

use rvs_core::wire::nd;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arc_swap::ArcSwap;

use rvs_core::tables::KeyHasher;
use rvs_core::wire::ethernet::Mac;

pub type NeighborMap = HashMap<IpAddr, Entry, BuildHasherDefault<KeyHasher>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub mac: Mac,
    /// From the config: never replaced by what the network says.
    pub fixed: bool,
}

#[derive(Debug)]
pub struct Neighbors {
    map: ArcSwap<NeighborMap>,
}

impl Neighbors {
    pub fn new(fixed: impl IntoIterator<Item = (IpAddr, Mac)>) -> Neighbors {
        let map: NeighborMap = fixed
            .into_iter()
            .map(|(ip, mac)| (ip, Entry { mac, fixed: true }))
            .collect();
        Neighbors {
            map: ArcSwap::from_pointee(map),
        }
    }

    /// The current map behind an arc-swap guard: what a worker reads for one poll loop
    /// without touching the shared reference count.
    pub fn current(&self) -> arc_swap::Guard<Arc<NeighborMap>> {
        self.map.load()
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<Mac> {
        self.map.load().get(&ip).map(|e| e.mac)
    }

    /// Records what the network said; returns whether the table changed.
    pub fn learn(&self, ip: IpAddr, mac: Mac) -> bool {
        let cur = self.map.load();
        match cur.get(&ip) {
            Some(e) if e.fixed || e.mac == mac => return false,
            _ => {}
        }
        self.map.rcu(|m| {
            let mut m = NeighborMap::clone(m);
            if !m.get(&ip).is_some_and(|e| e.fixed) {
                m.insert(ip, Entry { mac, fixed: false });
            }
            m
        });
        true
    }

    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads an ARP packet (reply, request or announcement) behind `l2` for its sender binding.
pub fn arp_sender(frame: &[u8]) -> Option<(IpAddr, Mac)> {
    let l2 = if frame.get(12..14)? == [0x81, 0x00] {
        18
    } else {
        14
    };
    let a = rvs_core::wire::arp::ArpPacket::new_checked(frame.get(l2..)?).ok()?;
    let ip = a.sender_ip();
    (!ip.is_unspecified()).then_some((IpAddr::V4(ip), a.sender_mac()))
}

/// Reads an ICMPv6 neighbor advertisement for its target binding (target link-layer option).
pub fn na_target(frame: &[u8]) -> Option<(IpAddr, Mac)> {
    let l2 = if frame.get(12..14)? == [0x81, 0x00] {
        18
    } else {
        14
    };
    let ip = frame.get(l2..)?;
    // No extension headers: neighbor discovery is sent without them.
    if ip.len() < 40 || ip[6] != 58 {
        return None;
    }
    let m = nd::NdMessage::new_checked(&ip[40..])?;
    if m.msg_type() != nd::ADVERTISEMENT {
        return None;
    }
    Some((IpAddr::V6(m.target()), m.target_lladdr()?))
}

/// An ARP request for `target` from `(mac, ip)`, padded to the Ethernet minimum.
pub fn arp_request(mac: Mac, ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f.resize(60, 0);
    f
}

/// A neighbor solicitation for `target` (RFC 4861 section 4.3) to its solicited-node
/// multicast group, with our link-layer address.
pub fn neighbor_solicitation(mac: Mac, ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let (group, group_mac) = nd::solicited_node(target);
    let mut msg = vec![0u8; nd::MESSAGE_LEN];
    nd::write_solicitation(&mut msg, target, mac);
    icmpv6_frame(mac, group_mac, ip, group, msg)
}

/// An Ethernet frame carrying neighbor-discovery message `msg` from `src` to `dst` with hop
/// limit 255, as neighbor discovery requires; the checksum is filled in.
fn icmpv6_frame(mac: Mac, dst_mac: Mac, src: Ipv6Addr, dst: Ipv6Addr, mut msg: Vec<u8>) -> Vec<u8> {
    nd::fill_checksum(&mut msg, src, dst);
    let mut f = Vec::with_capacity(54 + msg.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x86, 0xdd]);
    let mut ip6 = [0u8; 40];
    rvs_core::wire::ipv6::emit(&mut ip6, src, dst, 58, 255, msg.len() as u16);
    f.extend_from_slice(&ip6);
    f.extend_from_slice(&msg);
    f
}

/// An unsolicited neighbor advertisement for `addr` (RFC 4861 section 7.2.6) to all nodes,
/// with the override flag and our link-layer address: the IPv6 gratuitous ARP.
pub fn unsolicited_advertisement(mac: Mac, addr: Ipv6Addr) -> Vec<u8> {
    let (all, all_mac) = nd::all_nodes();
    let mut msg = vec![0u8; nd::MESSAGE_LEN];
    nd::write_advertisement(&mut msg, addr, mac, false);
    icmpv6_frame(mac, all_mac, addr, all, msg)
}

/// The announcement of `addr` at `mac`: a gratuitous ARP request (IPv4) or an unsolicited
/// neighbor advertisement (IPv6).
pub fn announcement(mac: Mac, addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => arp_request(mac, a, a),
        IpAddr::V6(a) => unsolicited_advertisement(mac, a),
    }
}

/// The MACs of the next hops a poll loop has sent to, by address: a direct-mapped cache of
/// 16 slots in front of the neighbor map, so that a burst spread over a few real servers and
/// the clients' gateway looks each up once, not every frame. Valid for one loop (the loop's
/// neighbor snapshot): [`HopCache::new_loop`] empties it without a write per slot. The
/// fields are kept apart, each written whole (a tuple built on the stack and copied in was
/// read back across its pieces: a store-forwarding stall).
#[derive(Debug, Clone)]
pub struct HopCache {
    /// The loop that filled each slot (0: never).
    stamps: [u64; HOP_SLOTS],
    hops: [IpAddr; HOP_SLOTS],
    macs: [Mac; HOP_SLOTS],
    /// The current loop, from 1.
    stamp: u64,
}

const HOP_SLOTS: usize = 16;

impl Default for HopCache {
    fn default() -> Self {
        HopCache {
            stamps: [0; HOP_SLOTS],
            hops: [IpAddr::V4(Ipv4Addr::UNSPECIFIED); HOP_SLOTS],
            macs: [[0; 6]; HOP_SLOTS],
            stamp: 1,
        }
    }
}

impl HopCache {
    /// A new poll loop, with its own neighbor snapshot: what the last one cached is gone.
    #[inline]
    pub fn new_loop(&mut self) {
        self.stamp += 1;
    }

    #[inline]
    fn slot(ip: &IpAddr) -> usize {
        // The low bits of the host part: next hops on one subnet differ there.
        let low = match ip {
            IpAddr::V4(a) => u32::from(*a),
            IpAddr::V6(a) => u32::from_be_bytes(a.octets()[12..16].try_into().expect("4 bytes")),
        };
        ((low ^ (low >> 8)) as usize) % HOP_SLOTS
    }

    #[inline]
    pub fn get(&self, ip: &IpAddr) -> Option<Mac> {
        let i = Self::slot(ip);
        (self.stamps[i] == self.stamp && self.hops[i] == *ip).then_some(self.macs[i])
    }

    #[inline]
    pub fn put(&mut self, ip: IpAddr, mac: Mac) {
        let i = Self::slot(&ip);
        self.stamps[i] = self.stamp;
        self.hops[i] = ip;
        self.macs[i] = mac;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::checksum;

    #[test]
    fn the_hop_cache_answers_within_a_loop_and_forgets_at_the_next() {
        let mut c = HopCache::default();
        let hops: Vec<IpAddr> = vec![
            "192.168.1.2".parse().unwrap(),
            "192.168.1.3".parse().unwrap(),
            "192.168.1.4".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            "2001:db8::9".parse().unwrap(),
        ];
        let slots: std::collections::HashSet<usize> = hops.iter().map(HopCache::slot).collect();
        assert_eq!(slots.len(), hops.len(), "the test's hops take a slot each");
        // A slot never filled answers nothing, even for the address it was made with.
        assert_eq!(c.get(&IpAddr::V4(Ipv4Addr::UNSPECIFIED)), None);
        for (i, h) in hops.iter().enumerate() {
            assert_eq!(c.get(h), None);
            c.put(*h, [2, 0, 0, 0, 0, i as u8]);
        }
        for (i, h) in hops.iter().enumerate() {
            assert_eq!(c.get(h), Some([2, 0, 0, 0, 0, i as u8]), "{h}");
        }
        // Two hops on one slot: the later one holds it, the other is asked for again.
        let a: IpAddr = "192.168.1.5".parse().unwrap();
        let b: IpAddr = "192.168.1.21".parse().unwrap();
        assert_eq!(HopCache::slot(&a), HopCache::slot(&b));
        c.put(a, [1; 6]);
        c.put(b, [3; 6]);
        assert_eq!((c.get(&a), c.get(&b)), (None, Some([3; 6])));
        // An address of the other family with the same low bits is not a hit.
        let v6: IpAddr = "::c0a8:105".parse().unwrap();
        c.put(a, [1; 6]);
        assert_eq!(c.get(&v6), None);
        c.new_loop();
        for h in hops.iter().chain([&a, &b]) {
            assert_eq!(c.get(h), None, "{h} survived the loop");
        }
    }

    #[test]
    fn learning_never_replaces_fixed_entries() {
        let fixed_ip: IpAddr = "10.0.0.1".parse().unwrap();
        let n = Neighbors::new([(fixed_ip, [2, 0, 0, 0, 0, 1])]);
        assert!(!n.learn(fixed_ip, [2, 0, 0, 0, 0, 9]));
        assert_eq!(n.lookup(fixed_ip), Some([2, 0, 0, 0, 0, 1]));
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(n.learn(other, [2, 0, 0, 0, 0, 2]));
        assert!(
            !n.learn(other, [2, 0, 0, 0, 0, 2]),
            "the same binding is no change"
        );
        assert_eq!(n.lookup(other), Some([2, 0, 0, 0, 0, 2]));
    }

    #[test]
    fn arp_request_is_read_back_as_its_sender() {
        let f = arp_request(
            [2, 0, 0, 0, 0, 0xa],
            "192.168.1.1".parse().unwrap(),
            "192.168.1.2".parse().unwrap(),
        );
        assert_eq!(f.len(), 60);
        assert_eq!(
            arp_sender(&f),
            Some(("192.168.1.1".parse().unwrap(), [2, 0, 0, 0, 0, 0xa]))
        );
    }

    #[test]
    fn solicitation_checksum_and_group() {
        let f = neighbor_solicitation(
            [2, 0, 0, 0, 0, 0xa],
            "2001:db8::1".parse().unwrap(),
            "2001:db8::1234:5678".parse().unwrap(),
        );
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0x34, 0x56, 0x78]);
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&f[38..54]).unwrap());
        let icmp = &f[54..];
        assert_eq!(
            checksum::fold(checksum::sum(
                icmp,
                checksum::pseudo_v6(src, dst, 58, icmp.len() as u32)
            )),
            0xffff
        );
    }

    #[test]
    fn an_unsolicited_advertisement_is_read_back_with_a_valid_checksum() {
        let mac = [2, 0, 0, 0, 0, 0xb];
        let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let f = announcement(mac, IpAddr::V6(vip));
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(na_target(&f), Some((IpAddr::V6(vip), mac)));
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&f[38..54]).unwrap());
        let icmp = &f[54..];
        assert_eq!(icmp[4], 0x20, "override, not solicited");
        assert_eq!(
            checksum::fold(checksum::sum(
                icmp,
                checksum::pseudo_v6(vip, dst, 58, icmp.len() as u32)
            )),
            0xffff
        );
        let garp = announcement(mac, "10.0.0.100".parse().unwrap());
        assert_eq!(arp_sender(&garp), Some(("10.0.0.100".parse().unwrap(), mac)));
    }
}
