//! rvs-twin: the kernel side of the host path, over rtnetlink.
//!
//! rvsd gives each data port that asks for it a kernel twin (a `net_tap` interface, made by
//! DPDK). This crate does what the kernel must be told or asked about those interfaces: their
//! index, MTU and up state, the port's configured addresses, and the addresses they hold now;
//! and it waits for the kernel's address events, so that an operator's `ip addr add` or
//! keepalived's VRRP moving a VIP reaches rvsd at once rather than at the next poll.
//!
//! It speaks rtnetlink through `netlink-packet-route` and a blocking `netlink-sys` socket (no
//! async runtime: one thread waits for events, the control thread makes a few requests at
//! start). Nothing here knows DPDK, so it is tested against the kernel in a namespace alone.

use std::net::IpAddr;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel refused a request; `errno` says why.
    #[error("{what}: {errno}")]
    Kernel { what: String, errno: std::io::Error },
    #[error("no interface named {0:?} in this network namespace")]
    NoSuchInterface(String),
    #[error("a netlink message rvs cannot read: {0}")]
    Decode(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// An address an interface holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldAddress {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// Still being checked for duplicates (IPv6 DAD), or found a duplicate: not usable yet.
    pub tentative: bool,
}

/// A request socket.
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    pub fn new() -> Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink { sock, seq: 0 })
    }

    /// The index of the interface called `name`.
    pub fn link_index(&mut self, name: &str) -> Result<u32> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let replies = self
            .request(
                RouteNetlinkMessage::GetLink(m),
                NLM_F_REQUEST,
                "looking the interface up",
            )
            .map_err(|e| match e {
                Error::Kernel { ref errno, .. } if errno.raw_os_error() == Some(19) => {
                    Error::NoSuchInterface(name.to_string())
                }
                e => e,
            })?;
        replies
            .into_iter()
            .find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })
            .ok_or_else(|| Error::NoSuchInterface(name.to_string()))
    }

    /// Sets the interface's MTU and brings it up.
    pub fn set_up(&mut self, index: u32, mtu: u16) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::Mtu(mtu as u32));
        self.request(
            RouteNetlinkMessage::SetLink(m),
            NLM_F_REQUEST | NLM_F_ACK,
            "setting the MTU and bringing the interface up",
        )
        .map(drop)
    }

    /// Adds `addr/prefix_len` to the interface (IPv6 without duplicate address detection: the
    /// address is the port's own by configuration). An address already there is no error.
    pub fn add_address(&mut self, index: u32, addr: IpAddr, prefix_len: u8) -> Result<()> {
        let m = address_message(index, addr, prefix_len);
        match self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("adding {addr}/{prefix_len}"),
        ) {
            Err(Error::Kernel { errno, .. }) if errno.raw_os_error() == Some(17) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Removes `addr/prefix_len` from the interface.
    pub fn del_address(&mut self, index: u32, addr: IpAddr, prefix_len: u8) -> Result<()> {
        let m = address_message(index, addr, prefix_len);
        self.request(
            RouteNetlinkMessage::DelAddress(m),
            NLM_F_REQUEST | NLM_F_ACK,
            &format!("removing {addr}/{prefix_len}"),
        )
        .map(drop)
    }

    /// Every address of every interface, as the kernel has them now.
    pub fn addresses(&mut self) -> Result<Vec<HeldAddress>> {
        let replies = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_REQUEST | NLM_F_DUMP,
            "listing addresses",
        )?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(a) => held(a),
                _ => None,
            })
            .collect())
    }

    /// Sends one request and collects its answers: until the acknowledgement, the end of a
    /// dump, or the kernel's error.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut nl = NetlinkMessage::from(msg);
        nl.header.flags = flags;
        nl.header.sequence_number = seq;
        nl.finalize();
        let mut buf = vec![0; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            for m in parse(&data)? {
                if m.header.sequence_number != seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => Err(Error::Kernel {
                                what: what.to_string(),
                                errno: std::io::Error::from_raw_os_error(-code.get()),
                            }),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(inner) => {
                        out.push(inner);
                        // A plain get answers with one message and no acknowledgement.
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn address_message(index: u32, addr: IpAddr, prefix_len: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.index = index;
    m.header.prefix_len = prefix_len;
    match addr {
        IpAddr::V4(_) => {
            m.header.family = AddressFamily::Inet;
            m.attributes.push(AddressAttribute::Local(addr));
            m.attributes.push(AddressAttribute::Address(addr));
        }
        IpAddr::V6(a) => {
            m.header.family = AddressFamily::Inet6;
            m.header.flags = AddressHeaderFlags::Nodad;
            if a.segments()[0] & 0xffc0 == 0xfe80 {
                m.header.scope = AddressScope::Link;
            }
            m.attributes.push(AddressAttribute::Address(addr));
            m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
    m
}

/// Reads an address message: IPv4's local address (IFA_LOCAL) or else IFA_ADDRESS.
fn held(a: &AddressMessage) -> Option<HeldAddress> {
    let mut local = None;
    let mut address = None;
    let mut flags = AddressFlags::from_bits_retain(a.header.flags.bits() as u32);
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(x) => local = Some(*x),
            AddressAttribute::Address(x) => address = Some(*x),
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    Some(HeldAddress {
        index: a.header.index,
        addr: local.or(address)?,
        prefix_len: a.header.prefix_len,
        tentative: flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed),
    })
}

fn parse(data: &[u8]) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= data.len() {
        let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..])
            .map_err(|e| Error::Decode(e.to_string()))?;
        let len = m.header.length as usize;
        if len < 16 {
            break;
        }
        off += (len + 3) & !3;
        out.push(m);
    }
    Ok(out)
}

/// The kernel's address events (RTM_NEWADDR / RTM_DELADDR, IPv4 and IPv6).
pub struct AddressEvents {
    sock: Socket,
}

/// rtnetlink multicast groups (linux/rtnetlink.h: RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR).
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV6_IFADDR: u32 = 9;

impl AddressEvents {
    /// Subscribes; `wait` gives up after `tick` so the caller can check whether to stop.
    pub fn new(tick: Duration) -> Result<AddressEvents> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.add_membership(RTNLGRP_IPV4_IFADDR)?;
        sock.add_membership(RTNLGRP_IPV6_IFADDR)?;
        rustix::net::sockopt::set_socket_timeout(&sock, rustix::net::sockopt::Timeout::Recv, Some(tick))
            .map_err(std::io::Error::from)?;
        Ok(AddressEvents { sock })
    }

    /// Waits up to the tick for address events; true if addresses may have changed (an event
    /// came, or events were lost because the socket overflowed: then re-read them all).
    pub fn wait(&mut self) -> Result<bool> {
        match self.sock.recv_from_full() {
            Ok((data, _)) => Ok(parse(&data)?.iter().any(|m| {
                matches!(
                    m.payload,
                    NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::NewAddress(_) | RouteNetlinkMessage::DelAddress(_)
                    )
                )
            })),
            Err(e) if e.raw_os_error() == Some(105) => Ok(true), // ENOBUFS: events were lost
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}
