//! What the director answers itself: ARP requests and ICMP echo requests for its VIPs and its
//! own addresses. Both are rewritten in place into the reply.

use crate::wire::nd;
use std::net::IpAddr;

use super::family::{Family, IpInfo};
use super::{Director, Verdict};
use crate::drop::DropReason;
use crate::frame::Frame;
use crate::tables::Tables;
use crate::wire::arp::{self, ArpPacket};
use crate::wire::ethernet::EthernetFrame;
use crate::wire::icmp::IcmpPacket;

impl Director {
    pub(super) fn arp<F: Frame>(&mut self, t: &Tables, port: u16, f: &mut F, l2: usize) -> Verdict {
        let b = f.data_mut();
        let mut a = match ArpPacket::new_checked(&mut b[l2..]) {
            Ok(a) => a,
            Err(r) => return Verdict::Drop(r),
        };
        let target = IpAddr::V4(a.target_ip());
        let twin = t.net.port(port).is_some_and(|p| p.twin);
        if a.operation() != arp::OP_REQUEST || a.sender_ip() == a.target_ip() {
            // Replies and gratuitous announcements teach the neighbor table, and the kernel's
            // too when they concern it (answers to its requests, announcements).
            let host = twin && (a.sender_ip() == a.target_ip() || t.net.host_holds(target));
            return if host {
                Verdict::ToHost { port, learn: true }
            } else {
                Verdict::Neighbor
            };
        }
        if !t.answers(port, target) {
            // The kernel answers for the addresses it holds (and learns the asker).
            if twin && t.net.host_holds(target) {
                return Verdict::ToHost { port, learn: true };
            }
            if !t.net.is_local(target) {
                return Verdict::Drop(DropReason::ArpNotForUs);
            }
        }
        let Some(p) = t.net.port(port) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let asker = a.sender_mac();
        a.make_reply(p.mac);
        let mut eth = EthernetFrame::new_checked(&mut b[..]).expect("classified");
        eth.set_dst(asker);
        eth.set_src(p.mac);
        Verdict::Reply { port }
    }

    /// Echo request -> echo reply, in place: addresses swapped (which leaves every checksum's
    /// sum unchanged), TTL reset, type changed with an incremental checksum update.
    pub(super) fn echo<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        port: u16,
        f: &mut F,
        l2: usize,
        ip: IpInfo<A>,
    ) -> Verdict {
        let Some(p) = t.net.port(port) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let b = f.data_mut();
        let iph = &mut b[l2..];
        A::set_src(iph, ip.dst);
        A::set_dst(iph, ip.src);
        A::set_ttl(iph, 64);
        let mut icmp = IcmpPacket::new_checked(&mut b[l2 + ip.l4..l2 + ip.end]).expect("classified");
        icmp.set_type(A::echo_reply());
        let mut eth = EthernetFrame::new_checked(&mut b[..]).expect("classified");
        let peer = eth.src();
        eth.set_dst(peer);
        eth.set_src(p.mac);
        Verdict::Reply { port }
    }
}

impl Director {
    /// IPv6 neighbor discovery (RFC 4861): a solicitation for a VIP or a director address is
    /// answered with an advertisement carrying the port's MAC, rewritten in place; an
    /// advertisement goes to the neighbor table.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn neighbor_discovery<F: Frame>(
        &mut self,
        t: &Tables,
        port: u16,
        f: &mut F,
        l2: usize,
        src: IpAddr,
        hop_limit: u8,
        l4: usize,
        end: usize,
    ) -> Verdict {
        let b = f.data();
        let dst = crate::wire::ipv6::Ipv6Packet::new_unchecked(&b[l2..]).dst();
        let twin = t.net.port(port).is_some_and(|p| p.twin);
        if b[l2 + l4] == nd::ADVERTISEMENT {
            // Advertisements teach the neighbor table, and the kernel's when addressed to it.
            return if twin && (dst.is_multicast() || t.net.host_holds(IpAddr::V6(dst))) {
                Verdict::ToHost { port, learn: true }
            } else {
                Verdict::Neighbor
            };
        }
        // A valid solicitation: hop limit 255, no extension headers, a whole target.
        if hop_limit != 255 || l4 != 40 || end < 40 + 24 {
            return Verdict::Drop(DropReason::NdNotForUs);
        }
        let Some(target) = nd::NdMessage::new_checked(&b[l2 + l4..l2 + end]).map(|m| m.target()) else {
            return Verdict::Drop(DropReason::NdNotForUs);
        };
        let (IpAddr::V6(src), Some(p)) = (src, t.net.port(port)) else {
            return Verdict::Drop(DropReason::NdNotForUs);
        };
        if !t.answers(port, IpAddr::V6(target)) {
            if twin && t.net.host_holds(IpAddr::V6(target)) {
                return Verdict::ToHost { port, learn: false };
            }
            if !t.net.is_local(IpAddr::V6(target)) {
                return Verdict::Drop(DropReason::NdNotForUs);
            }
        }
        // Duplicate address detection comes from ::, and is answered to all nodes.
        let (dst, solicited) = if src.is_unspecified() {
            (nd::all_nodes().0, false)
        } else {
            (src, true)
        };
        let want = l2 + 40 + nd::MESSAGE_LEN;
        let have = f.data().len();
        let resized = if have > want {
            f.trim(have - want)
        } else {
            f.append(want - have)
        };
        if !resized {
            return Verdict::Drop(DropReason::NoHeadroom);
        }
        let mac = p.mac;
        let b = f.data_mut();
        let mut eth = crate::wire::ethernet::EthernetFrame::new_checked(&mut b[..])
            .expect("classified: an Ethernet header");
        let peer = eth.src();
        eth.set_dst(peer);
        eth.set_src(mac);
        crate::wire::ipv6::emit(
            &mut b[l2..l2 + 40],
            target,
            dst,
            crate::wire::proto::ICMPV6,
            255,
            nd::MESSAGE_LEN as u16,
        );
        let na = &mut b[l2 + 40..l2 + 40 + nd::MESSAGE_LEN];
        nd::write_advertisement(na, target, mac, solicited);
        nd::fill_checksum(na, target, dst);
        Verdict::Reply { port }
    }
}
