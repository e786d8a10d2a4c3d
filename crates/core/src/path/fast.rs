//! The established path: a NAT, DR or plain FullNAT connection's packet that changes nothing
//! but its connection's expiry (TCP in ESTABLISHED without SYN, FIN or RST; UDP), in an
//! untagged IPv4 frame with a 20-byte header, is rewritten here (NAT's at fixed offsets),
//! without the general path's steps. It is an exact shortcut: every frame it takes comes out
//! of it byte for byte, with the same verdict, the same table and the same counters as out of
//! the general path (`crates/core/tests/established.rs` drives both with the same random
//! bursts and compares them), and it takes nothing else.
//!
//! DR's client packets are taken (only the MACs change), and FullNAT's both ways when nothing
//! is inserted into the stream. What it does not take goes the general way: a state change, a
//! template to keep alive, a TTL that runs out, TUN, FullNAT with the PROXY protocol or TOA,
//! IPv6, options or a VLAN tag.

use std::net::Ipv4Addr;

use super::flow::via;
use super::method::fullnat;
use super::{Director, Fast4, Verdict};
use crate::conn::state::TcpState;
use crate::conn::{Addr, KeyKind, CONN_CLIENT_VIA_GW, CONN_INACTIVE, CONN_RS_VIA_GW, CONN_TOA, NIL};
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
        // NAT either way; DR's client packets (it has no others), which keep their headers;
        // FullNAT either way when nothing is inserted into its stream (no PROXY header, no
        // TOA: no sequence numbers to move, no option to add), out of line.
        let nat = match c.forward {
            Forward::Nat => Some(true),
            Forward::Dr => Some(false),
            Forward::FullNat if c.proxy_len == 0 && c.flags & CONN_TOA == 0 => None,
            Forward::Tun | Forward::FullNat => return false,
        };
        if c.template != NIL || x.ttl <= 1 || !self.established_path {
            return false;
        }
        let Some(nat) = nat else {
            return self.established_full4(t, f, x, idx, kind, now, timeout_s, v);
        };
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
        self.taken(verdict, v)
    }

    /// [`Self::established4`] for a FullNAT connection without PROXY or TOA, its conditions
    /// met: both addresses and ports rewritten by FullNAT's own rewrite, as its general path
    /// does (out of line: its word-by-word checksum update would crowd the NAT and DR cases'
    /// registers).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn established_full4<F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        x: &Fast4,
        idx: u32,
        kind: KeyKind,
        now: u64,
        timeout_s: u32,
        v: &mut Verdict,
    ) -> bool {
        let c = *self.conns4.get(idx);
        let inbound = kind == KeyKind::In;
        // Inbound from the local address and port to the real server; a reply from the VIP
        // to the client.
        let (src, dst, egress, gateway) = if inbound {
            (
                (c.laddr, c.lport),
                (c.raddr, c.rport),
                c.rs_port,
                c.flags & CONN_RS_VIA_GW != 0,
            )
        } else {
            (
                (c.vaddr, c.vport),
                (c.client, c.cport),
                c.client_port,
                c.flags & CONN_CLIENT_VIA_GW != 0,
            )
        };
        let Some(b) = f.data_mut().get_mut(..ethernet::HEADER_LEN + x.len as usize) else {
            return false;
        };
        self.conns4.get_mut(idx).expires = now + timeout_s as u64 * 1000;
        if self.sync_on {
            self.sync_check::<Ipv4Addr>(idx, c.state, now);
        }
        self.account(c.real, inbound, x.len as usize);
        let (ip, _) = x.layers();
        fullnat::rewrite(b, ethernet::HEADER_LEN, &ip, src, dst, None);
        let verdict = via(t, b, egress, gateway, dst.0.ip());
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
