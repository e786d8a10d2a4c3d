//! The forwarding methods, behind one seam. A connection is bound to its method when it is
//! made (`Conn::forward`, as IPVS binds its xmit function), and the path asks the method, here,
//! what a client's packet becomes (inbound), what a real server's reply becomes (outbound: only
//! NAT's replies come back through the director), and what an ICMP error about the connection
//! becomes. Each method is one file: `nat.rs`, `dr.rs`, `tun.rs`, `fullnat.rs`.

pub(super) mod dr;
pub(in crate::path) mod fullnat;
pub(super) mod nat;
mod tun;

use super::family::{Family, IpInfo};
use super::{Director, Pkt, Verdict};
use crate::conn::{Conn, KeyKind};
use crate::frame::Frame;
use crate::model::Forward;
use crate::tables::Tables;

/// The packet an ICMP error quotes: its headers as parsed, where the quote starts in the frame
/// and where the message ends.
#[derive(Debug, Clone, Copy)]
pub(super) struct Quoted<A> {
    pub ip: IpInfo<A>,
    pub at: usize,
    pub end: usize,
}

impl Director {
    /// A client's packet to its real server, by the connection's method.
    #[inline(always)]
    pub(super) fn forward_in<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        p: &Pkt<A>,
        c: &Conn<A>,
    ) -> Verdict {
        // Counted once the packet is known to go on (a dropped one is not traffic).
        self.account(c.real, true, p.ip.end);
        match c.forward {
            Forward::Nat => nat::inbound(t, f.data_mut(), p, c),
            Forward::Dr => dr::inbound(t, f.data_mut(), c),
            Forward::Tun => self.tunnel::<A, F>(t, f, p, c.raddr),
            Forward::FullNat => self.fullnat_in(t, f, p, c),
        }
    }

    /// A real server's reply, back to the client (NAT and FullNAT: the methods whose replies
    /// come through the director).
    #[inline]
    pub(super) fn forward_out<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        p: &Pkt<A>,
        c: &Conn<A>,
    ) -> Verdict {
        self.account(c.real, false, p.ip.end);
        if c.forward == Forward::FullNat {
            return fullnat::outbound(t, f.data_mut(), p, c);
        }
        nat::outbound(t, f.data_mut(), p, c)
    }

    /// An ICMP error about connection `c`: from the server side (`KeyKind::Out`) to the client,
    /// or sent to a VIP about a reply, to the real server by the connection's method.
    pub(super) fn icmp_about<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        p: &Pkt<A>,
        q: &Quoted<A>,
        kind: KeyKind,
        c: &Conn<A>,
    ) -> Verdict {
        match (kind, c.forward) {
            (k, Forward::FullNat) => fullnat::icmp(t, f.data_mut(), p, q, c, k == KeyKind::Out),
            (KeyKind::Out, _) => nat::icmp_to_client(t, f.data_mut(), p, q, c),
            (_, Forward::Nat) => nat::icmp_to_real(t, f.data_mut(), p, q, c),
            (_, Forward::Dr) => dr::icmp_to_real(t, f.data_mut(), c),
            (_, Forward::Tun) => self.tunnel::<A, F>(t, f, p, c.raddr),
        }
    }
}
