//! The established path: a connection's packet that changes nothing but its connection's
//! expiry (TCP in ESTABLISHED without SYN, FIN or RST; UDP), in an untagged IPv4 frame with a
//! 20-byte header, is forwarded here without the general path's steps: NAT's and DR's in one
//! inlined step (NAT's rewrite at fixed offsets), FullNAT's and TUN's by their methods' own
//! code. It is an exact shortcut: every frame it takes comes out of it byte for byte, with the
//! same verdict, the same table and the same counters as out of the general path
//! (`crates/core/tests/established.rs` drives both with the same random bursts and compares
//! them), and it takes nothing else.
//!
//! What it does not take goes the general way: a state change, a template to keep alive, a
//! TTL that runs out, IPv6, options or a VLAN tag.

use std::net::Ipv4Addr;

use super::flow::via;
use super::{Director, Fast4, Pkt, Verdict};
use crate::conn::state::TcpState;
use crate::conn::{Addr, KeyKind, CONN_CLIENT_VIA_GW, CONN_INACTIVE, CONN_RS_VIA_GW, NIL};
use crate::frame::Frame;
use crate::model::Forward;
use crate::tables::Tables;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::{ethernet, ipv4, l4, proto, tcp};

impl Director {
    /// Forwards an IPv4 packet of connection `idx` (found by its `kind` of key) if it is one
    /// the established path takes: writes its verdict to `v`, counts it, and answers true.
    /// Answers false, having changed nothing, if not.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn established4<F: Frame>(
        &mut self,
        t: &Tables,
        port: u16,
        f: &mut F,
        x: &Fast4,
        idx: u32,
        kind: KeyKind,
        now: u64,
        v: &mut Verdict,
    ) -> bool {
        let c = self.conns4.get(idx);
        // The established case of the state step (`Director::step`): the state stays and
        // only the expiry moves. A UDP connection is always inactive; one that is not yet is
        // moved there by the general path.
        let timeout_s = match c.proto {
            proto::TCP
                if c.state == TcpState::Established as u8
                    && x.tcp_flags & (tcp::flags::SYN | tcp::flags::FIN | tcp::flags::RST) == 0 =>
            {
                t.timeouts.tcp[TcpState::Established as usize]
            }
            proto::UDP if c.flags & CONN_INACTIVE != 0 => t.timeouts.udp,
            _ => return false,
        };
        // NAT either way and DR's client packets (it has no others, and they keep their
        // headers) here; FullNAT and TUN out of line, by their methods' own code.
        let nat = match c.forward {
            Forward::Nat => Some(true),
            Forward::Dr => Some(false),
            Forward::FullNat | Forward::Tun => None,
        };
        if c.template != NIL || x.ttl <= 1 || !self.established_path {
            return false;
        }
        let Some(nat) = nat else {
            return self.established_by_method4(t, port, f, x, idx, kind, now, timeout_s, v);
        };
        let inbound = kind == KeyKind::In;
        // Inbound the destination becomes the real server's; a reply's source the VIP's.
        let (addr, new_port, egress, gateway, next_hop) = if inbound {
            (
                c.raddr,
                c.rport,
                c.rs_port,
                c.flags & CONN_RS_VIA_GW != 0,
                c.raddr,
            )
        } else {
            (
                c.vaddr,
                c.vport,
                c.client_port,
                c.flags & CONN_CLIENT_VIA_GW != 0,
                c.client,
            )
        };
        let (real, state) = (c.real, c.state);
        // The headers at their fixed offsets (the classifier checked that the packet is in the
        // frame, so this fails for none; it is checked before anything changes all the same).
        const IP_END: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;
        let Some((head, seg)) = f
            .data_mut()
            .get_mut(..ethernet::HEADER_LEN + x.len as usize)
            .and_then(|b| b.split_first_chunk_mut::<IP_END>())
        else {
            return false;
        };
        self.conns4.get_mut(idx).expires = now + timeout_s as u64 * 1000;
        if self.sync_on {
            self.sync_check::<Ipv4Addr>(idx, state, now);
        }
        self.account(real, inbound, x.len as usize);
        let (eth, ip_header) = head.split_at_mut(ethernet::HEADER_LEN);
        if nat {
            // NAT's rewrite (`Family::nat`) with the offsets known.
            let delta = Ipv4Packet::new_unchecked(ip_header).nat_rewrite_delta(!inbound, addr);
            l4::nat_rewrite_v4(x.proto, seg, !inbound, new_port, delta);
        }
        let verdict = via(t, eth, egress, gateway, next_hop.ip());
        self.taken(verdict, v)
    }

    /// [`Self::established4`] for a FullNAT or TUN connection, its conditions met: what the
    /// general path does after its state step, its method's own code included (FullNAT's
    /// PROXY header and TOA, TUN's encapsulation), without the steps before (out of line:
    /// inlined, that code would crowd the NAT and DR cases' registers).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn established_by_method4<F: Frame>(
        &mut self,
        t: &Tables,
        port: u16,
        f: &mut F,
        x: &Fast4,
        idx: u32,
        kind: KeyKind,
        now: u64,
        timeout_s: u32,
        v: &mut Verdict,
    ) -> bool {
        let mut c = *self.conns4.get(idx);
        c.expires = now + timeout_s as u64 * 1000;
        self.conns4.get_mut(idx).expires = c.expires;
        if self.sync_on {
            self.sync_check::<Ipv4Addr>(idx, c.state, now);
        }
        let (ip, l4) = x.layers();
        let p = Pkt::new(port, ethernet::HEADER_LEN, ip, l4, now);
        let verdict = if kind == KeyKind::In {
            self.forward_in(t, f, &p, &c)
        } else {
            self.forward_out(t, f, &p, &c)
        };
        self.taken(verdict, v)
    }

    /// The established path's verdict, written and counted.
    #[inline(always)]
    fn taken(&mut self, verdict: Verdict, v: &mut Verdict) -> bool {
        *v = verdict;
        match verdict {
            // Received and forwarded too: added once a burst (`process_burst`).
            Verdict::Forward { .. } => self.stats.established_path += 1,
            _ => self.count(verdict),
        }
        true
    }
}
