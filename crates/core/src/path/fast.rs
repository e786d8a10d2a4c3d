//! The established path: a NAT or DR connection's packet that changes nothing but its
//! connection's expiry (TCP in ESTABLISHED without SYN, FIN or RST; UDP), in an untagged IPv4
//! frame with a
//! 20-byte header, is rewritten here at fixed offsets, without the general path's steps. It is
//! an exact shortcut: every frame it takes comes out of it byte for byte, with the same
//! verdict, the same table and the same counters as out of the general path (a property
//! test below drives both with the same frames and compares them), and it takes nothing else.
//!
//! DR's client packets are taken too (only the MAC changes). What it does not take goes the
//! general way: a state change, a template to keep alive, a TTL that runs out, TUN and
//! FullNAT, IPv6, options or a VLAN tag.

use std::net::Ipv4Addr;

use super::flow::via;
use super::{Director, Fast4, Verdict};
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
        // NAT either way; DR's client packets (it has no others), which keep their headers.
        let nat = match c.forward {
            Forward::Nat => true,
            Forward::Dr => false,
            Forward::Tun | Forward::FullNat => return false,
        };
        if c.template != NIL || x.ttl <= 1 || !self.established_path {
            return false;
        }
        let inbound = kind == KeyKind::In;
        // Inbound the destination becomes the real server's; a reply's source the VIP's.
        let (addr, port, egress, gateway, next_hop) = if inbound {
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
            l4::nat_rewrite_v4(x.proto, seg, !inbound, port, delta);
        }
        let verdict = via(t, eth, egress, gateway, next_hop.ip());
        *v = verdict;
        match verdict {
            // Received and forwarded too: added once a burst (`process_burst`).
            Verdict::Forward { .. } => self.stats.established_path += 1,
            _ => self.count(verdict),
        }
        true
    }
}
