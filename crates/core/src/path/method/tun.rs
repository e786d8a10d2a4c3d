//! TUN forwarding (IP-in-IP toward the real server) and the ICMP "too big" answer when the
//! encapsulated packet would not fit the egress MTU.

use super::super::family::{Family, IpInfo};
use super::super::{Director, Pkt, Verdict};
use crate::drop::DropReason;
use crate::frame::Frame;
use crate::tables::Tables;
use crate::wire::ethernet::EthernetFrame;

impl Director {
    /// Prepends an outer header from the director's address on the egress port to `raddr`;
    /// the inner packet is not touched (IPVS copies its TOS and DF to the outer header).
    pub(in crate::path) fn tunnel<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        p: &Pkt<A>,
        raddr: A,
    ) -> Verdict {
        let Pkt { port, l2, ip, .. } = *p;
        let Some((egress, next_hop)) = t.route(raddr.ip()) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let Some(src) = A::source(&t.net, egress) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let mtu = t.net.ports[egress as usize].mtu as usize;
        let inner_len = ip.end;
        if inner_len + A::HEADER_LEN > mtu {
            if A::may_fragment(&f.data()[l2..]) {
                return Verdict::Drop(DropReason::TunNeedsFragmentation);
            }
            return icmp_error_reply::<A, F>(t, port, f, l2, ip, |icmp| {
                A::too_big(icmp, (mtu - A::HEADER_LEN) as u16)
            });
        }
        let pad = f.data().len() - (l2 + inner_len);
        if !f.prepend(A::HEADER_LEN) {
            return Verdict::Drop(DropReason::NoHeadroom);
        }
        f.trim(pad);
        let ident = self.next_ident();
        let b = f.data_mut();
        b.copy_within(A::HEADER_LEN..A::HEADER_LEN + l2, 0);
        let (head, inner) = b.split_at_mut(l2 + A::HEADER_LEN);
        A::emit_tunnel(&mut head[l2..], inner, src, raddr, inner_len, ident);
        EthernetFrame::new_checked(&mut b[..])
            .expect("header moved intact")
            .set_src(t.net.ports[egress as usize].mac);
        Verdict::Forward {
            port: egress,
            next_hop,
        }
    }
}

/// Turns the frame into an ICMP error to its sender (from the address it was sent to),
/// quoting as much of it as the error may carry. `fill` writes type, code and the 4-byte field.
pub(in crate::path) fn icmp_error_reply<A: Family, F: Frame>(
    t: &Tables,
    port: u16,
    f: &mut F,
    l2: usize,
    ip: IpInfo<A>,
    fill: impl FnOnce(&mut [u8]),
) -> Verdict {
    let quoted = ip.end.min(A::ICMP_ERROR_MAX - A::HEADER_LEN - 8);
    let extra = f.data().len() - (l2 + quoted);
    let grow = A::HEADER_LEN + 8;
    if !f.prepend(grow) {
        return Verdict::Drop(DropReason::NoHeadroom);
    }
    f.trim(extra);
    let b = f.data_mut();
    b.copy_within(grow..grow + l2, 0);
    let mut eth = EthernetFrame::new_checked(&mut b[..]).expect("header moved intact");
    let peer = eth.src();
    eth.set_dst(peer);
    eth.set_src(t.net.ports[port as usize].mac);
    let icmp_len = 8 + quoted;
    A::emit_icmp_ip(&mut b[l2..], ip.dst, ip.src, icmp_len);
    let msg = &mut b[l2 + A::HEADER_LEN..];
    fill(msg);
    msg[2..4].fill(0);
    let c = A::icmp_checksum(msg, ip.dst, ip.src);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    Verdict::Reply { port }
}
