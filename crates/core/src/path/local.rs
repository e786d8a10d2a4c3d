//! What the director answers itself: ARP requests and ICMP echo requests for its VIPs and its
//! own addresses. Both are rewritten in place into the reply.

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
        if a.operation() != arp::OP_REQUEST || a.sender_ip() == a.target_ip() {
            // Replies and gratuitous announcements teach the neighbor table.
            return Verdict::Neighbor;
        }
        if !t.owns(IpAddr::V4(a.target_ip())) {
            return Verdict::Drop(DropReason::ArpNotForUs);
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
