//! High availability settings: the IPVS sync daemon (`--start-daemon`, `[[sync_daemon]]`) and
//! the peer director the configuration is kept in step with (`[peer]`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// A sync daemon's role, as ipvsadm names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncRole {
    Master,
    Backup,
}

impl SyncRole {
    pub fn name(self) -> &'static str {
        match self {
            SyncRole::Master => "master",
            SyncRole::Backup => "backup",
        }
    }

    pub fn parse(s: &str) -> Option<SyncRole> {
        match s {
            "master" => Some(SyncRole::Master),
            "backup" => Some(SyncRole::Backup),
            _ => None,
        }
    }
}

/// `--start-daemon` as given (ipvsadm's option names), on the socket and in the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSyncDaemon {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcast_interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syncid: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_maxlen: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcast_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcast_port: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcast_ttl: Option<i64>,
}

/// A validated sync daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDaemonConfig {
    pub state: SyncRole,
    pub mcast_interface: String,
    /// 0: a backup takes every syncid; a master sends 0.
    pub syncid: u8,
    /// Largest message, bytes of UDP payload.
    pub maxlen: usize,
    pub group: IpAddr,
    pub port: u16,
    pub ttl: u8,
}

/// The kernel's bounds: a message fits a 1,500-byte link without fragments (a backup reads
/// up to 64 KiB, what an older or larger-MTU master may send).
const MASTER_MAXLEN: usize = 1472;
const BACKUP_MAXLEN: usize = 65507;

impl RawSyncDaemon {
    /// Checks every field; a problem names the option.
    pub fn validate(&self) -> Result<SyncDaemonConfig, ConfigError> {
        let mut errs = Vec::new();
        let state = match self.state.as_deref() {
            None => {
                errs.push("state: needed: master or backup".to_string());
                SyncRole::Master
            }
            Some(s) => SyncRole::parse(s).unwrap_or_else(|| {
                errs.push(format!("state: {s:?} is not master or backup"));
                SyncRole::Master
            }),
        };
        let mcast_interface = match self.mcast_interface.as_deref() {
            None | Some("") => {
                errs.push(
                    "mcast_interface: needed: the kernel interface (a port's twin) the daemon uses".into(),
                );
                String::new()
            }
            Some(i) if i.len() > 15 || i.contains(['/', ':', ' ']) => {
                errs.push(format!("mcast_interface: {i:?} is not an interface name"));
                String::new()
            }
            Some(i) => i.to_string(),
        };
        let int = |v: Option<i64>, name: &str, lo: i64, hi: i64, def: i64, errs: &mut Vec<String>| -> i64 {
            match v {
                None => def,
                Some(x) if (lo..=hi).contains(&x) => x,
                Some(x) => {
                    errs.push(format!("{name}: {x} is outside {lo}..={hi}"));
                    def
                }
            }
        };
        let syncid = int(self.syncid, "syncid", 0, 255, 0, &mut errs) as u8;
        let cap = match state {
            SyncRole::Master => MASTER_MAXLEN,
            SyncRole::Backup => BACKUP_MAXLEN,
        };
        // As the kernel does, a length past what the link carries is clamped, not refused.
        let maxlen = int(self.sync_maxlen, "sync_maxlen", 1, 65507, 1472, &mut errs) as usize;
        let maxlen = maxlen.clamp(rvs_core::sync::MIN_MAXLEN, cap);
        let group = match self.mcast_group.as_deref() {
            None => IpAddr::V4(Ipv4Addr::new(224, 0, 0, 81)),
            Some(g) => match g.parse::<IpAddr>() {
                Ok(a) if a.is_multicast() => a,
                _ => {
                    errs.push(format!("mcast_group: {g:?} is not a multicast address"));
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                }
            },
        };
        let port = int(self.mcast_port, "mcast_port", 1, 65535, 8848, &mut errs) as u16;
        let ttl = int(self.mcast_ttl, "mcast_ttl", 1, 255, 1, &mut errs) as u8;
        if !errs.is_empty() {
            return Err(ConfigError(errs));
        }
        Ok(SyncDaemonConfig {
            state,
            mcast_interface,
            syncid,
            maxlen,
            group,
            port,
            ttl,
        })
    }
}

impl SyncDaemonConfig {
    /// `ipvsadm -L --daemon`'s line for it.
    pub fn line(&self) -> String {
        format!(
            "{} sync daemon (mcast={}, syncid={}, maxlen={}, group={}, port={}, ttl={})",
            self.state.name(),
            self.mcast_interface,
            self.syncid,
            self.maxlen,
            self.group,
            self.port,
            self.ttl
        )
    }
}

/// `[peer]`: the other director of the pair, whose configuration this one keeps in step with.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeer {
    /// Where this director accepts the peer's changes (an address of its twin).
    pub listen: Option<String>,
    /// Where the peer accepts this director's changes.
    pub address: Option<String>,
    /// The shared key (at least 16 bytes), or a file holding it.
    pub key: Option<String>,
    pub key_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub listen: SocketAddr,
    pub address: SocketAddr,
    pub key: Vec<u8>,
}

pub const MIN_KEY_LEN: usize = 16;

/// `[routes]`: the VIPs this director wants traffic for, published as /32 (/128) addresses on
/// a kernel interface, where a routing daemon (BIRD's `direct` protocol, FRR's connected
/// routes) picks them up and announces them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoutes {
    /// The interface the VIPs go on: a port's twin (it vanishes with rvsd, so a dead rvsd's
    /// routes go too) or any interface of rvsd's namespace.
    pub interface: Option<String>,
    /// On a clean stop, how long rvsd keeps forwarding after withdrawing (default 2 s), so
    /// the routers move the flows before the last packets are dropped.
    pub linger: Option<crate::check::RawDuration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutesConfig {
    pub interface: String,
    pub linger: std::time::Duration,
}

impl RawRoutes {
    pub fn validate(&self, errs: &mut Vec<String>) -> Option<RoutesConfig> {
        let interface = match self.interface.as_deref() {
            Some(i) if !i.is_empty() && i.len() <= 15 && !i.contains(['/', ':', ' ']) => Some(i.to_string()),
            Some(i) => {
                errs.push(format!("routes.interface: {i:?} is not an interface name"));
                None
            }
            None => {
                errs.push("routes.interface: needed: where the VIPs are put for the routing daemon".into());
                None
            }
        };
        let linger = match &self.linger {
            None => Some(std::time::Duration::from_secs(2)),
            Some(d) => match d.parse() {
                Some(x) if x <= std::time::Duration::from_secs(60) => Some(x),
                _ => {
                    errs.push(format!("routes.linger: {d:?} is not a duration up to 60s"));
                    None
                }
            },
        };
        Some(RoutesConfig {
            interface: interface?,
            linger: linger?,
        })
    }
}

impl RawPeer {
    pub fn validate(&self, errs: &mut Vec<String>) -> Option<PeerConfig> {
        let addr = |v: &Option<String>, name: &str, errs: &mut Vec<String>| match v.as_deref() {
            None => {
                errs.push(format!("peer.{name}: needed: IP:port"));
                None
            }
            Some(s) => match s.parse::<SocketAddr>() {
                Ok(a) if a.port() != 0 => Some(a),
                _ => {
                    errs.push(format!("peer.{name}: {s:?} is not an IP:port"));
                    None
                }
            },
        };
        let listen = addr(&self.listen, "listen", errs);
        let address = addr(&self.address, "address", errs);
        let key = match (&self.key, &self.key_file) {
            (Some(_), Some(_)) => {
                errs.push("peer.key, peer.key_file: give one, not both".into());
                None
            }
            (None, None) => {
                errs.push("peer.key: needed (or peer.key_file): the pair's shared secret".into());
                None
            }
            (Some(k), None) => Some(k.trim().as_bytes().to_vec()),
            (None, Some(f)) => match std::fs::read_to_string(PathBuf::from(f)) {
                Ok(k) => Some(k.trim().as_bytes().to_vec()),
                Err(e) => {
                    errs.push(format!("peer.key_file: {f}: {e}"));
                    None
                }
            },
        };
        let key = key.filter(|k| {
            let ok = k.len() >= MIN_KEY_LEN;
            if !ok {
                errs.push(format!("peer.key: {} bytes; at least {MIN_KEY_LEN}", k.len()));
            }
            ok
        });
        Some(PeerConfig {
            listen: listen?,
            address: address?,
            key: key?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(state: &str, ifname: &str) -> RawSyncDaemon {
        RawSyncDaemon {
            state: Some(state.into()),
            mcast_interface: Some(ifname.into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_the_kernels_and_the_line_is_ipvsadms() {
        let d = raw("master", "eth0").validate().unwrap();
        assert_eq!(
            d.line(),
            "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"
        );
        let b = RawSyncDaemon {
            syncid: Some(7),
            sync_maxlen: Some(9000),
            mcast_group: Some("ff02::81".into()),
            mcast_port: Some(9000),
            mcast_ttl: Some(2),
            ..raw("backup", "rvs0")
        }
        .validate()
        .unwrap();
        assert_eq!((b.syncid, b.maxlen, b.port, b.ttl), (7, 9000, 9000, 2));
        let m = RawSyncDaemon {
            sync_maxlen: Some(9000),
            ..raw("master", "eth0")
        };
        assert_eq!(
            m.validate().unwrap().maxlen,
            1472,
            "a master's messages fit a 1500-byte link"
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let e = RawSyncDaemon {
            state: Some("primary".into()),
            mcast_interface: None,
            syncid: Some(256),
            sync_maxlen: Some(0),
            mcast_group: Some("10.0.0.1".into()),
            mcast_port: Some(70000),
            mcast_ttl: Some(0),
        }
        .validate()
        .unwrap_err()
        .to_string();
        for f in [
            "state",
            "mcast_interface",
            "syncid",
            "sync_maxlen",
            "mcast_group",
            "mcast_port",
            "mcast_ttl",
        ] {
            assert!(e.contains(f), "{f} in {e}");
        }
    }

    #[test]
    fn a_peer_needs_addresses_and_a_long_enough_key() {
        let mut errs = Vec::new();
        let p = RawPeer {
            listen: Some("10.0.0.1:8849".into()),
            address: Some("10.0.0.2:8849".into()),
            key: Some("0123456789abcdef".into()),
            key_file: None,
        }
        .validate(&mut errs)
        .unwrap();
        assert!(errs.is_empty());
        assert_eq!(p.key.len(), 16);
        let mut errs = Vec::new();
        let bad = RawPeer {
            listen: Some("10.0.0.1".into()),
            address: None,
            key: Some("short".into()),
            key_file: None,
        };
        assert!(bad.validate(&mut errs).is_none());
        assert_eq!(errs.len(), 3, "{errs:?}");
    }
}
