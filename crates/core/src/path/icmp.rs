//! ICMP: echo for the director's addresses, and errors that quote a tracked flow, translated
//! the way IPVS does (`ip_vs_nat_icmp`) and sent toward the right party:
//! - an error from the server side about a packet rvs forwarded to a NAT real server
//!   (quoted client -> RIP) goes to the client, as if from the VIP;
//! - an error sent to a VIP about a reply (quoted VIP -> client) goes to the connection's real
//!   server by its method (NAT rewritten back to the RIP, DR as is, TUN encapsulated).
//!
//! Outer and quoted IP headers and the quoted ports are rewritten; the quoted transport
//! checksum is updated when it was quoted, and the ICMP checksum recomputed over the message.

use super::family::Family;
use super::method::Quoted;
use super::{Director, Pkt, Verdict};
use crate::conn::{KeyKind, Tuple};
use crate::drop::DropReason;
use crate::frame::Frame;
use crate::tables::Tables;
use crate::wire::icmp::HEADER_LEN as ICMP_HDR;
use crate::wire::{l4, nd, proto};

impl Director {
    pub(super) fn icmp<A: Family, F: Frame>(&mut self, t: &Tables, f: &mut F, p: &Pkt<A>) -> Verdict {
        let Pkt { port, l2, ip, .. } = *p;
        let msg_type = f.data()[l2 + ip.l4];
        if A::ICMP == proto::ICMPV6 && matches!(msg_type, nd::SOLICITATION | nd::ADVERTISEMENT) {
            return self.neighbor_discovery(t, port, f, l2, ip.src.ip(), ip.ttl, ip.l4, ip.end);
        }
        let dst = ip.dst.ip();
        if msg_type == A::echo_request() {
            // rvs answers for its VIPs; the kernel for the addresses it holds on a twin.
            return if t.answers(port, dst) {
                self.echo(t, port, f, l2, ip)
            } else if t.net.to_host(port, dst) {
                Verdict::ToHost { port, learn: false }
            } else if t.net.is_local(dst) {
                self.echo(t, port, f, l2, ip)
            } else {
                Verdict::Drop(DropReason::NotForUs)
            };
        }
        if A::is_error(msg_type) {
            return self.icmp_error(t, f, p);
        }
        // Echo replies to the kernel's pings, router advertisements, MLD...
        let ours = t.is_vip_on(port, dst) || t.net.is_local(dst);
        super::host_or_drop(
            t,
            port,
            dst,
            if ours {
                DropReason::IcmpUnhandled
            } else {
                DropReason::NotForUs
            },
        )
    }

    fn icmp_error<A: Family, F: Frame>(&mut self, t: &Tables, f: &mut F, p: &Pkt<A>) -> Verdict {
        let Pkt { port, l2, ip, .. } = *p;
        let body_at = l2 + ip.l4 + ICMP_HDR;
        let end = l2 + ip.end;
        let Some(q) = A::parse_quoted(&f.data()[body_at..end]) else {
            return Verdict::Drop(DropReason::IcmpQuoteTruncated);
        };
        if !matches!(q.proto, proto::TCP | proto::UDP | proto::SCTP) {
            return super::host_or_drop(t, port, ip.dst.ip(), DropReason::IcmpNoConn);
        }
        if body_at + q.l4 + 4 > end {
            return Verdict::Drop(DropReason::IcmpQuoteTruncated);
        }
        let (qsport, qdport) = l4::ports(&f.data()[body_at + q.l4..end]);
        let rev = Tuple {
            src: q.dst,
            dst: q.src,
            sport: qdport,
            dport: qsport,
            proto: q.proto,
        };
        let Some((idx, kind)) = A::table(self).lookup(&rev) else {
            // Errors about the kernel's own connections (a refused health probe, a PMTU
            // update) are the kernel's.
            if t.net.to_host(port, ip.dst.ip()) {
                return Verdict::ToHost { port, learn: false };
            }
            let (client, cport) = if t.is_vip(q.src.ip()) {
                (q.dst.ip(), qdport)
            } else {
                (q.src.ip(), qsport)
            };
            let owner = self.owner(q.proto, client, cport);
            if owner != self.worker() {
                return Verdict::Redirect { worker: owner };
            }
            return Verdict::Drop(DropReason::IcmpNoConn);
        };
        let c = *A::table(self).get(idx);
        if ip.ttl <= 1 && (kind == KeyKind::Out || c.forward.has_replies()) {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let q = Quoted {
            ip: q,
            at: body_at,
            end,
        };
        self.icmp_about(t, f, p, &q, kind, &c)
    }
}

/// Recomputes the ICMP checksum over the whole message (the quoted bytes changed).
pub(super) fn finish_icmp<A: Family>(msg: &mut [u8], src: A, dst: A) {
    msg[2..4].fill(0);
    let c = A::icmp_checksum(msg, src, dst);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
}
