//! The control protocol: newline-delimited JSON over a Unix stream socket. A request is one
//! object `{"id": N, "op": "...", ...}`; the answer is one object `{"id": N, "ok": true, ...}`
//! or `{"id": N, "ok": false, "error": {"code": "...", "message": "..."}}`. Services and real
//! servers travel in the config file's own shape ([`RawService`], [`RawReal`]), so the daemon
//! validates them with the same rules and the same messages as a config file.

use serde::{Deserialize, Serialize};

use crate::config::{RawReal, RawService};

/// The longest request line accepted (bytes, newline excluded).
pub const MAX_LINE: usize = 64 * 1024;

/// Identifies a virtual service: `{"protocol": "tcp", "address": "10.0.0.100:80"}`, or a
/// firewall-mark service: `{"fwmark": 1}` (`{"fwmark": 1, "ipv6": true}` for `-f 1 -6`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceId {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ipv6: bool,
}

impl ServiceId {
    /// An address service: `tcp`, `10.0.0.100:80`.
    pub fn addr(protocol: &str, address: &str) -> ServiceId {
        ServiceId {
            protocol: protocol.into(),
            address: address.into(),
            ..ServiceId::default()
        }
    }

    /// A firewall-mark service of a family.
    pub fn fwmark(mark: u32, ipv6: bool) -> ServiceId {
        ServiceId {
            fwmark: Some(mark),
            ipv6,
            ..ServiceId::default()
        }
    }

    pub fn of(key: &rvs_core::model::ServiceKey) -> ServiceId {
        match *key {
            rvs_core::model::ServiceKey::Addr { protocol, vip, port } => {
                ServiceId::addr(protocol.name(), &std::net::SocketAddr::new(vip, port).to_string())
            }
            rvs_core::model::ServiceKey::Fwmark { mark, v6 } => ServiceId::fwmark(mark, v6),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// `-A`: a new service (with real servers, if any are given).
    AddService {
        service: RawService,
    },
    /// `-E`: change scheduler, flags or persistence of a service; its real servers stay.
    EditService {
        service: RawService,
    },
    /// `-D`.
    DeleteService {
        service: ServiceId,
    },
    /// `-C`: remove every service.
    Clear {},
    /// `-a`.
    AddReal {
        service: ServiceId,
        real: RawReal,
    },
    /// `-e`: weight and thresholds (the method cannot change, as in IPVS).
    EditReal {
        service: ServiceId,
        real: RawReal,
    },
    /// `-d`.
    DeleteReal {
        service: ServiceId,
        address: String,
    },
    /// `-P` (DPVS's `--add-laddr`): a FullNAT local address for a service.
    AddLocalAddress {
        service: ServiceId,
        address: String,
    },
    /// `-Q` (DPVS's `--del-laddr`): the address is no longer used for new connections; those
    /// made from it go on until they end.
    DeleteLocalAddress {
        service: ServiceId,
        address: String,
    },
    /// `-L`: services with real servers, counts, stats and rates.
    List {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<ServiceId>,
    },
    /// `-Lc`: the connection entries.
    Connections {},
    /// `-L --health` (rvs): each real server's health and each service's quorum.
    Health {},
    /// `-Z`.
    Zero {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<ServiceId>,
    },
    /// `--set tcp tcpfin udp` (0 leaves a value unchanged).
    SetTimeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
    GetTimeouts {},
    /// `-R`: replace every service with these, in one step. A table too large for one
    /// request line goes in several on one connection: each but the last says `more`, and the
    /// table is replaced (all or nothing) when the last arrives. In a later part, an entry
    /// with only `protocol`, `address` and `real` adds real servers to a service given before.
    Restore {
        services: Vec<RawService>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        more: bool,
    },
    /// Version, workers, ports, uptime, drops.
    Status {},
    /// `--start-daemon master|backup` and its options (IPVS connection sync).
    StartDaemon {
        daemon: crate::ha::RawSyncDaemon,
    },
    /// `--stop-daemon master|backup`.
    StopDaemon {
        state: String,
    },
    /// `-L --daemon`: the sync daemons that run, and the sync counters.
    Daemons {},
    /// `--drain` / `--undrain` (rvs): withdraw this director's routes while it keeps serving
    /// the connections it has, or announce them again.
    Drain {
        drain: bool,
    },
    /// `-L --routes` (rvs): the VIPs published for the routing daemon, and why others are not.
    Routes {},
    /// `--add-mark` (rvs): a classifier rule for `-f` services, appended (first match wins).
    AddMark {
        mark: crate::mark::RawMark,
    },
    /// `--delete-mark` (rvs): the rule equal to this one.
    DeleteMark {
        mark: crate::mark::RawMark,
    },
    /// `-L --marks` (rvs): the classifier's rules in order.
    Marks {},
    /// Changing ops applied one after the other as separate commands (a failing one changes
    /// nothing and the rest go on), published to the workers once at the end: how `rvsadm -R`
    /// runs a rule file line by line at the speed of one change.
    Batch {
        ops: Vec<Op>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub op: Op,
}

/// Why a request line could not be read: the id when it was readable, and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    pub id: u64,
    pub message: String,
}

impl Request {
    /// One JSON line, as sent on the socket (without the newline).
    pub fn to_line(&self) -> String {
        let mut v = serde_json::to_value(&self.op).expect("ops serialize");
        v.as_object_mut()
            .expect("an op is an object")
            .insert("id".into(), self.id.into());
        v.to_string()
    }

    /// Reads a request line. Unknown ops, unknown fields and wrong types are errors that say
    /// which; the id is recovered when possible so the error can be matched to the request.
    pub fn parse(line: &str) -> Result<Request, BadRequest> {
        // serde_json keeps the last of repeated keys: {"op":"list","op":"clear"} would clear.
        serde_json::from_str::<UniqueKeys>(line).map_err(|e| BadRequest {
            id: 0,
            message: format!("malformed JSON: {e}"),
        })?;
        let mut v: serde_json::Value = serde_json::from_str(line).map_err(|e| BadRequest {
            id: 0,
            message: format!("malformed JSON: {e}"),
        })?;
        let obj = v.as_object_mut().ok_or(BadRequest {
            id: 0,
            message: "a request is a JSON object".into(),
        })?;
        let id = match obj.remove("id") {
            Some(serde_json::Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap(),
            Some(other) => {
                return Err(BadRequest {
                    id: 0,
                    message: format!("\"id\" must be a non-negative integer, not {other}"),
                })
            }
            None => {
                return Err(BadRequest {
                    id: 0,
                    message: "missing \"id\"".into(),
                })
            }
        };
        let op = serde_json::from_value(v).map_err(|e| BadRequest {
            id,
            message: e.to_string(),
        })?;
        Ok(Request { id, op })
    }
}

/// Any JSON value whose objects, at any depth, name each key once.
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<UniqueKeys, D::Error> {
        d.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<UniqueKeys, A::Error> {
        while s.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = m.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(serde::de::Error::custom(format!("the key {k:?} is given twice")));
            }
            m.next_value::<UniqueKeys>()?;
        }
        Ok(UniqueKeys)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable, for programs: `bad_request`, `invalid`, `not_found`, `exists`, `too_long`.
    pub code: String,
    /// For people: says what is wrong and what to do.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Reply>,
}

impl Response {
    pub fn ok(id: u64, result: Option<Reply>) -> Response {
        Response {
            id,
            ok: true,
            error: None,
            result,
        }
    }

    pub fn err(id: u64, code: &str, message: impl Into<String>) -> Response {
        Response {
            id,
            ok: false,
            error: Some(ErrorBody {
                code: code.into(),
                message: message.into(),
            }),
            result: None,
        }
    }
}

/// Counters and their rates (IPVS's estimator: per second, smoothed over 2-second samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    pub in_bps: u64,
    pub out_bps: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealView {
    pub address: String,
    pub port: u16,
    /// nat | dr | tun | fullnat
    pub method: String,
    pub weight: u32,
    pub upper: u32,
    pub lower: u32,
    pub active: u32,
    pub inactive: u32,
    pub persistent: u32,
    pub stats: Stats,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    /// tcp, udp, sctp; empty for a firewall-mark service.
    pub protocol: String,
    /// The VIP's address (no port); for a mark's service, the family's unspecified address.
    pub address: String,
    pub port: u16,
    /// The mark of a firewall-mark service (`-f`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    pub scheduler: String,
    /// `-b` flags as ipvsadm spells them.
    pub flags: Vec<String>,
    pub persistence: Option<u32>,
    /// Persistence netmask as a prefix length.
    pub netmask: Option<u8>,
    /// `follow-host` when the VIP follows its twin's addresses (an rvs extension); None for
    /// ipvsadm's behaviour, always answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce: Option<String>,
    /// True for a sloppy service (an rvs extension); absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sloppy: bool,
    /// ipvsadm's `-o` (one-packet scheduling).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_packet: bool,
    /// FullNAT's local addresses (DPVS's laddrs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_addresses: Vec<String>,
    /// FullNAT's PROXY protocol version (v1, v2), if on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
    /// FullNAT's TOA, if on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub toa: bool,
    pub stats: Stats,
    pub reals: Vec<RealView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnView {
    pub protocol: String,
    /// Seconds until it expires.
    pub expires: u64,
    pub state: String,
    pub client: String,
    pub virtual_: String,
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortView {
    pub name: String,
    pub rx: u64,
    pub tx: u64,
    pub imissed: u64,
    pub rx_nombuf: u64,
    #[serde(default)]
    pub rx_bytes: u64,
    #[serde(default)]
    pub tx_bytes: u64,
    #[serde(default)]
    pub ierrors: u64,
    #[serde(default)]
    pub oerrors: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// Per op of a batch, in order: None if applied, else its error.
    Batch {
        errors: Vec<Option<ErrorBody>>,
    },
    Routes {
        /// The interface the VIPs go on (None without `[routes]`).
        interface: Option<String>,
        drained: bool,
        /// VIPs on the interface now.
        announced: Vec<String>,
        /// VIPs not announced, each with why.
        withdrawn: Vec<(String, String)>,
    },
    Marks {
        marks: Vec<crate::mark::RawMark>,
    },
    Daemons {
        daemons: Vec<crate::ha::SyncDaemonConfig>,
        /// Sync counters by name (sent, received, installed, refused by reason...).
        counters: Vec<(String, u64)>,
    },
    Services {
        table_size: usize,
        services: Vec<ServiceView>,
    },
    Connections {
        conns: Vec<ConnView>,
    },
    Health {
        services: Vec<HealthServiceView>,
    },
    Timeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
    Status {
        version: String,
        workers: usize,
        uptime_s: u64,
        ports: Vec<PortView>,
        drops: Vec<(String, u64)>,
        /// Median and maximum microseconds from a change's publication to every worker
        /// running with it (over recent changes); None before any change.
        change_visible_us: Option<[u64; 2]>,
        /// The host path's counters, when some port has a kernel twin.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host_path: Option<HostPathView>,
        #[serde(default)]
        services: usize,
        /// Bytes the services take (servers and scheduler tables).
        #[serde(default)]
        tables_bytes: usize,
        /// Connections sloppy services made from mid-flow segments (flows taken over).
        #[serde(default)]
        sloppy_created: u64,
        /// Every worker counter by its name (`rx`, `forwarded`, `frag_held`...), summed over
        /// the workers.
        #[serde(default)]
        counters: Vec<(String, u64)>,
    },
}

/// A service's health: its quorum and its real servers'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthServiceView {
    pub protocol: String,
    /// `VIP:port`.
    pub service: String,
    /// 0: no quorum.
    pub quorum: u32,
    pub hysteresis: u32,
    /// The total effective weight of the live servers.
    pub live_weight: u64,
    /// False while the quorum is lost (the sorry server takes new connections).
    pub quorum_up: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<String>,
    pub reals: Vec<HealthRealView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRealView {
    /// `RIP:port`.
    pub address: String,
    /// The check's type, or `none`.
    pub check: String,
    /// `up`, `down`, or `unchecked`.
    pub state: String,
    pub weight: u32,
    /// What the scheduler uses now.
    pub effective_weight: u32,
    /// The last probe's result (`http status 200`, `connect refused`, `timeout 1s`...).
    pub last: String,
    /// Milliseconds since the last probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
    pub successes: u32,
    pub failures: u32,
    pub transitions: u64,
}

/// The host path: frames between the data ports and their kernel twins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPathView {
    /// The twins' interface names.
    pub twins: Vec<String>,
    /// Frames the workers found for the host.
    pub to_host: u64,
    /// Frames the kernel received on a twin.
    pub up: u64,
    /// Frames a twin would not take.
    pub up_failed: u64,
    /// Over the host path's rate: dropped before going up.
    pub limited: u64,
    /// The ring to the host thread was full.
    pub ring_full: u64,
    /// Frames the kernel sent on a twin (and rvs's own announcements), out of the port.
    pub down: u64,
    /// Frames from the kernel dropped because a worker's ring was full.
    pub down_ring_full: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_documented() {
        let r = Request::parse(
            r#"{"id":7,"op":"add_real","service":{"protocol":"tcp","address":"10.0.0.100:80"},"real":{"address":"192.168.1.2:80","method":"nat","weight":2}}"#,
        )
        .unwrap();
        assert_eq!(r.id, 7);
        match r.op {
            Op::AddReal { service, real } => {
                assert_eq!(service.address, "10.0.0.100:80");
                assert_eq!(real.weight, Some(2));
            }
            other => panic!("{other:?}"),
        }
        let back = Request::parse(
            &Request {
                id: 1,
                op: Op::Clear {},
            }
            .to_line(),
        )
        .unwrap();
        assert_eq!(
            back,
            Request {
                id: 1,
                op: Op::Clear {}
            }
        );
    }

    #[test]
    fn unknown_ops_and_fields_are_refused() {
        let e = Request::parse(r#"{"id":1,"op":"explode"}"#).unwrap_err();
        assert_eq!(e.id, 1);
        assert!(e.message.contains("unknown variant `explode`"), "{}", e.message);
        let e = Request::parse(r#"{"id":2,"op":"clear","force":true}"#).unwrap_err();
        assert!(e.message.contains("unknown field `force`"), "{}", e.message);
        let e = Request::parse(r#"{"id":"one","op":"clear"}"#).unwrap_err();
        assert!(e.message.contains("\"id\" must be"), "{}", e.message);
        let e = Request::parse(r#"{"id":3,"op":"set_timeouts","tcp":"x","tcpfin":0,"udp":0}"#).unwrap_err();
        assert!(e.message.contains("invalid type"), "{}", e.message);
        assert!(Request::parse("{nope")
            .unwrap_err()
            .message
            .starts_with("malformed JSON"));
    }
}
