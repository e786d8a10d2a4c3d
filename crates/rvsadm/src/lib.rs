//! ipvsadm's command line and output formats: rvsadm's, and the tables rvsd prints when it
//! stops. Depends on the API crate only (no DPDK).
//!
//! [`parse`] turns ipvsadm arguments (short options may be bundled: `-Ln`) into a [`Cmd`];
//! the `fmt_*` functions print what the daemon answers the way ipvsadm 1.31 prints it.

use std::fmt::Write;

use rvs_api::config::{RawReal, RawService};
use rvs_api::proto::{ConnView, ServiceId, ServiceView, Stats};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOpts {
    pub numeric: bool,
    pub conns: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub exact: bool,
    pub timeout: bool,
    /// `--health` (rvs): health checks and quorums.
    pub health: bool,
    /// `--daemon`: the sync daemons.
    pub daemon: bool,
    /// `--routes` (rvs): the VIPs published for the routing daemon.
    pub routes: bool,
    /// `--nosort`: the daemon's order, not ipvsadm's.
    pub nosort: bool,
    /// `--marks` (rvs): the classifier's rules.
    pub marks: bool,
    /// `--tun-info`: each real server's tunnel type.
    pub tun_info: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    AddService(RawService),
    EditService(RawService),
    DeleteService(ServiceId),
    Clear,
    Restore,
    Save {
        numeric: bool,
        nosort: bool,
        /// `--marks` (rvs): the classifier's rules first, as `--add-mark` lines.
        marks: bool,
    },
    AddReal(ServiceId, RawReal),
    EditReal(ServiceId, RawReal),
    DeleteReal(ServiceId, String),
    List {
        service: Option<ServiceId>,
        opts: ListOpts,
    },
    Zero(Option<ServiceId>),
    SetTimeouts(u32, u32, u32),
    /// `--start-daemon master|backup` with its options.
    StartDaemon(rvs_api::ha::RawSyncDaemon),
    /// `--stop-daemon master|backup`.
    StopDaemon(String),
    /// `--drain` / `--undrain` (rvs).
    Drain(bool),
    /// `-P` / `--add-laddr`, `-Q` / `--del-laddr` (DPVS's): a FullNAT local address (`-z`).
    AddLocalAddress(ServiceId, String),
    DeleteLocalAddress(ServiceId, String),
    /// `-G` / `--get-laddr` (DPVS's): the local addresses of one service or all.
    ListLocalAddresses(Option<ServiceId>),
    /// `--add-mark` / `--delete-mark` (rvs): a classifier rule.
    AddMark(rvs_api::mark::RawMark),
    DeleteMark(rvs_api::mark::RawMark),
    Help,
    Version,
}

/// Expands what popt accepts into one token per option and value: bundled short options
/// (`-Ln` -> `-L -n`), a value attached to its short option (`-p600`, `-w3`), and
/// `--option=value`.
fn expand(args: &[String]) -> Vec<String> {
    const TAKES_VALUE: &str = "tufsMbrwxypRz";
    let mut out = Vec::new();
    for a in args {
        if let Some((opt, value)) = a.strip_prefix("--").and_then(|l| l.split_once('=')) {
            out.push(format!("--{opt}"));
            out.push(value.to_string());
        } else if a.len() > 2 && a.starts_with("-p") && a[2..].chars().all(|c| c.is_ascii_digit()) {
            // -p's value is optional: attached, it is the digits.
            out.push("-p".into());
            out.push(a[2..].to_string());
        } else if a.len() > 2 && a.starts_with('-') && !a.starts_with("--") {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut i = 0;
            while i < chars.len() {
                out.push(format!("-{}", chars[i]));
                if TAKES_VALUE.contains(chars[i]) && chars[i] != 'p' && chars[i] != 'R' && i + 1 < chars.len()
                {
                    out.push(chars[i + 1..].iter().collect());
                    break;
                }
                i += 1;
            }
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// ipvsadm's option names (`optnames`), in the order of its option bits.
const OPT_NAMES: [&str; 34] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// The option bit of an argument, as ipvsadm counts options (None for commands and rvs's own).
fn option_bit(o: &str) -> Option<u32> {
    Some(match o {
        "-n" | "--numeric" => 0,
        "-c" | "--connection" => 1,
        "-t" | "--tcp-service" | "-u" | "--udp-service" | "--sctp-service" | "-f" | "--fwmark-service" => 2,
        "-s" | "--scheduler" => 3,
        "-p" | "--persistent" => 4,
        "-M" | "--netmask" => 5,
        "-r" | "--real-server" => 6,
        "-g" | "--gatewaying" | "-i" | "--ipip" | "-m" | "--masquerading" | "--fullnat" => 7,
        "-w" | "--weight" => 8,
        "-x" | "--u-threshold" => 9,
        "-y" | "--l-threshold" => 10,
        "--mcast-interface" => 11,
        "--timeout" => 12,
        "--daemon" => 13,
        "--stats" => 14,
        "--rate" => 15,
        "--thresholds" => 16,
        "--persistent-conn" => 17,
        "--nosort" => 18,
        "--syncid" => 19,
        "--exact" | "-X" => 20,
        "-o" | "--ops" => 21,
        "--pe" => 22,
        "-b" | "--sched-flags" => 23,
        "--mcast-group" => 24,
        "--mcast-port" => 25,
        "--mcast-ttl" => 26,
        "--sync-maxlen" => 27,
        "--tun-info" => 28,
        "--tun-type" => 29,
        "--tun-port" => 30,
        "--tun-nocsum" => 31,
        "--tun-csum" => 32,
        "--tun-remcsum" => 33,
        _ => return None,
    })
}

/// ipvsadm's `commands_v_options` (1.31): for each command, each option is compulsory (+),
/// illegal (x), one of a mutually exclusive set (1) or optional, with ipvsadm's messages.
fn opt_check(cmd: char, given: u64) -> Result<(), String> {
    let (name, row) = match cmd {
        'A' => ("add-service", "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx"),
        'E' => ("edit-service", "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx"),
        'D' => ("delete-service", "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        'C' => ("flush", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        'L' => ("list", " 11xxxxxxxxx11       xxxxxxx xxxxx"),
        'a' => ("add-server", "xx+xxx+    xxxxxxxxxxxxxxxxxx     "),
        'd' => ("delete-server", "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        'e' => ("edit-server", "xx+xxx+    xxxxxxxxxxxxxxxxxx     "),
        's' => ("set", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        '1' => ("start-daemon", "xxxxxxxxxxx xxxxxxx xxxx    xxxxxx"),
        '0' => ("stop-daemon", "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx"),
        'R' => ("restore", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        'S' => ("save", " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        'Z' => ("zero", "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        _ => return Ok(()),
    };
    let mut first_one: Option<usize> = None;
    for (j, rule) in row.bytes().enumerate() {
        let set = given & (1 << j) != 0;
        match (rule, set) {
            (b'+', false) => {
                return Err(format!(
                    "You need to supply the '{}' option for the '{name}' command",
                    OPT_NAMES[j]
                ))
            }
            (b'x', true) => {
                return Err(format!(
                    "Illegal '{}' option with the '{name}' command",
                    OPT_NAMES[j]
                ))
            }
            (b'1', true) => match first_one {
                None => first_one = Some(j),
                Some(k) => {
                    return Err(format!(
                        "The option '{}' conflicts with the '{}' option in the '{name}' command",
                        OPT_NAMES[j], OPT_NAMES[k]
                    ))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// A port by number or by /etc/services name (`http`), as ipvsadm accepts them.
fn resolve_port(p: &str, proto: &str) -> Result<u16, String> {
    if let Ok(n) = p.parse::<u16>() {
        return Ok(n);
    }
    services_db()
        .into_iter()
        .find(|(name, _, pr)| name == p && pr == proto)
        .map(|(_, n, _)| n)
        .ok_or_else(|| format!("{p:?} is neither a port number nor a service name in /etc/services"))
}

fn services_db() -> Vec<(String, u16, String)> {
    let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
    let mut v = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut it = line.split_whitespace();
        let (Some(name), Some(pp)) = (it.next(), it.next()) else {
            continue;
        };
        if let Some((port, proto)) = pp.split_once('/') {
            if let Ok(port) = port.parse() {
                v.push((name.to_string(), port, proto.to_string()));
                for alias in it {
                    v.push((alias.to_string(), port, proto.to_string()));
                }
            }
        }
    }
    v
}

/// `port` as ipvsadm prints it without -n: its /etc/services name, else the number.
pub fn port_name(port: u16, proto: &str, numeric: bool) -> String {
    if numeric {
        return port.to_string();
    }
    let proto = if proto == "sctp" { "sctp" } else { proto };
    services_db()
        .into_iter()
        .find(|(_, n, p)| *n == port && p == proto)
        .map(|(name, _, _)| name)
        .unwrap_or_else(|| port.to_string())
}

/// Splits `host:port`, `[v6]:port` or a bare host.
fn split_hostport(s: &str) -> (String, Option<String>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once(']') {
            return (h.to_string(), p.strip_prefix(':').map(str::to_string));
        }
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p.to_string())),
        _ => (s.to_string(), None),
    }
}

fn join(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A host name resolved to its first address (IPv4 first, as ipvsadm's gethostbyname); an
/// address is returned as it is.
fn resolve_host(h: &str) -> Result<String, String> {
    if h.parse::<std::net::IpAddr>().is_ok() {
        return Ok(h.to_string());
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<std::net::SocketAddr> = (h, 0)
        .to_socket_addrs()
        .map_err(|e| format!("{h:?}: not an address, and it does not resolve: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip().to_string())
        .ok_or_else(|| format!("{h:?} resolves to no address"))
}

/// The name of `addr` by a reverse lookup (getnameinfo, names only), for `-L` without `-n`.
fn reverse_name(addr: &str) -> Option<String> {
    let ip: std::net::IpAddr = addr.parse().ok()?;
    dns_lookup::lookup_addr(&ip).ok()
}

fn service_id(proto: &str, addr: &str) -> Result<ServiceId, String> {
    let (h, p) = split_hostport(addr);
    let h = resolve_host(&h)?;
    let p = p.ok_or_else(|| format!("{addr:?}: a virtual service needs a port (VIP:port)"))?;
    let port = resolve_port(&p, proto)?;
    Ok(ServiceId::addr(proto, &join(&h, port)))
}

/// ipvsadm's `parse_fwmark`: a number in 1..=4294967295.
fn parse_fwmark(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(m) if m > 0 => Ok(m),
        _ => Err("illegal fwmark specified".into()),
    }
}

/// The protocol whose /etc/services names a real server's port is read with (a mark's
/// service: tcp's).
fn port_proto(id: &ServiceId) -> &str {
    if id.protocol.is_empty() {
        "tcp"
    } else {
        &id.protocol
    }
}

/// A rule's destination: an address (or a host name), with an optional prefix length.
fn resolve_prefix(s: &str) -> Result<String, String> {
    match s.split_once('/') {
        Some((h, len)) => Ok(format!("{}/{len}", resolve_host(h)?)),
        None => resolve_host(s),
    }
}

fn real_address(addr: &str, proto: &str) -> Result<String, String> {
    let (h, p) = split_hostport(addr);
    let h = resolve_host(&h)?;
    Ok(match p {
        Some(p) => join(&h, resolve_port(&p, proto)?),
        None => h,
    })
}

fn num(v: Option<&String>, what: &str) -> Result<i64, String> {
    let v = v.ok_or_else(|| format!("{what} needs a value"))?;
    v.parse().map_err(|_| format!("{what}: {v:?} is not a number"))
}

/// Parses ipvsadm arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Cmd, String> {
    let a = expand(args);
    let mut cmd: Option<char> = None;
    let mut svc: Option<(String, String)> = None;
    let mut sched = None;
    let mut persist: Option<Option<i64>> = None;
    let mut netmask = None;
    let mut flags = None;
    let mut announce = None;
    let mut sloppy = None;
    let mut one_packet = None;
    let mut proxy_protocol = None;
    let mut toa = None;
    let mut laddr: Option<String> = None;
    let mut real = None;
    let mut method = None;
    let (mut weight, mut upper, mut lower) = (None, None, None);
    let mut opts = ListOpts::default();
    let mut set = None;
    let mut daemon = rvs_api::ha::RawSyncDaemon::default();
    let mut fwmark_v6 = false;
    let mut rule = rvs_api::mark::RawMark::default();
    let mut rule_opts = false;
    let mut i = 0;
    let set_cmd = |cmd: &mut Option<char>, c: char| -> Result<(), String> {
        match cmd {
            Some(x) if *x != c => {
                Err("only one command (-A, -E, -D, -a, -e, -d, -L, -C, -R, -S, -Z, --set, --start-daemon, --stop-daemon) at a time".into())
            }
            _ => {
                *cmd = Some(c);
                Ok(())
            }
        }
    };
    let mut given = 0u64;
    while i < a.len() {
        let o = a[i].as_str();
        let next = a.get(i + 1);
        if let Some(bit) = option_bit(o) {
            // ipvsadm's set_option: each option once.
            if given & (1 << bit) != 0 {
                return Err(format!(
                    "multiple '{}' options specified",
                    OPT_NAMES[bit as usize]
                ));
            }
            given |= 1 << bit;
        }
        match o {
            "-A" | "--add-service" => set_cmd(&mut cmd, 'A')?,
            "-E" | "--edit-service" => set_cmd(&mut cmd, 'E')?,
            "-D" | "--delete-service" => set_cmd(&mut cmd, 'D')?,
            "-C" | "--clear" => set_cmd(&mut cmd, 'C')?,
            "-R" | "--restore" => set_cmd(&mut cmd, 'R')?,
            "-S" | "--save" => set_cmd(&mut cmd, 'S')?,
            "-a" | "--add-server" => set_cmd(&mut cmd, 'a')?,
            "-e" | "--edit-server" => set_cmd(&mut cmd, 'e')?,
            "-d" | "--delete-server" => set_cmd(&mut cmd, 'd')?,
            "-L" | "-l" | "--list" => set_cmd(&mut cmd, 'L')?,
            "-Z" | "--zero" => set_cmd(&mut cmd, 'Z')?,
            "-h" | "--help" => set_cmd(&mut cmd, 'h')?,
            "-V" | "-v" | "--version" => set_cmd(&mut cmd, 'V')?,
            "--set" => {
                set_cmd(&mut cmd, 's')?;
                let v: Vec<i64> = (1..=3)
                    .map(|k| num(a.get(i + k), "--set"))
                    .collect::<Result<_, _>>()?;
                if v.iter().any(|&x| !(0..=31 * 24 * 3600).contains(&x)) {
                    return Err("--set: timeouts are seconds in 0..=2678400 (0 leaves one unchanged)".into());
                }
                set = Some((v[0] as u32, v[1] as u32, v[2] as u32));
                i += 3;
            }
            "-t" | "--tcp-service" | "-u" | "--udp-service" | "--sctp-service" => {
                let proto = match o {
                    "-t" | "--tcp-service" => "tcp",
                    "-u" | "--udp-service" => "udp",
                    _ => "sctp",
                };
                svc = Some((proto.into(), next.ok_or(format!("{o} needs VIP:port"))?.clone()));
                i += 1;
            }
            "-f" | "--fwmark-service" => {
                let m = next.ok_or(format!("{o} needs a mark"))?;
                parse_fwmark(m)?;
                svc = Some(("fwmark".into(), m.clone()));
                i += 1;
            }
            "-s" | "--scheduler" => {
                sched = Some(next.ok_or("-s needs a scheduler name")?.clone());
                i += 1;
            }
            "-p" | "--persistent" => {
                // The timeout is optional: take the next token only if it is a number.
                match next.and_then(|n| n.parse::<i64>().ok()) {
                    Some(t) => {
                        persist = Some(Some(t));
                        i += 1;
                    }
                    None => persist = Some(None),
                }
            }
            "-M" | "--netmask" => {
                netmask = Some(next.ok_or("-M needs a netmask")?.clone());
                i += 1;
            }
            "--sloppy" => sloppy = Some(true),
            "-o" | "--ops" => one_packet = Some(true),
            "--no-sloppy" => sloppy = Some(false),
            "--announce" => {
                announce = Some(next.ok_or("--announce needs always or follow-host")?.clone());
                i += 1;
            }
            "-b" | "--sched-flags" => {
                flags = Some(next.ok_or("-b needs flags")?.clone());
                i += 1;
            }
            "-r" | "--real-server" => {
                real = Some(next.ok_or("-r needs RIP[:port]")?.clone());
                i += 1;
            }
            "-g" | "--gatewaying" => method = Some("dr"),
            // DPVS spells it -b, which is ipvsadm's --sched-flags: rvsadm keeps ipvsadm's.
            "--fullnat" => method = Some("fullnat"),
            "-P" | "--add-laddr" => set_cmd(&mut cmd, 'P')?,
            "-Q" | "--del-laddr" => set_cmd(&mut cmd, 'Q')?,
            "-G" | "--get-laddr" => set_cmd(&mut cmd, 'G')?,
            "-z" | "--laddr" => {
                let v = next.ok_or(format!("{o} needs a local address"))?;
                v.parse::<std::net::IpAddr>()
                    .map_err(|_| format!("{o}: {v:?} is not an IPv4/IPv6 address"))?;
                laddr = Some(v.clone());
                i += 1;
            }
            "--proxy-protocol" => {
                let v = next.ok_or("--proxy-protocol needs v1, v2 or off")?;
                if rvs_core::model::ProxyProtocol::parse(v).is_none() {
                    return Err(format!("--proxy-protocol: {v:?} is not one of v1, v2, off"));
                }
                proxy_protocol = Some(v.clone());
                i += 1;
            }
            "--toa" => {
                toa = Some(match next.map(String::as_str) {
                    Some("on") => true,
                    Some("off") => false,
                    _ => return Err("--toa needs on or off".into()),
                });
                i += 1;
            }
            "-i" | "--ipip" => method = Some("tun"),
            "-m" | "--masquerading" => method = Some("nat"),
            "-w" | "--weight" => {
                weight = Some(num(next, "-w")?);
                i += 1;
            }
            "-x" | "--u-threshold" => {
                upper = Some(num(next, "-x")?);
                i += 1;
            }
            "-y" | "--l-threshold" => {
                lower = Some(num(next, "-y")?);
                i += 1;
            }
            "-n" | "--numeric" => opts.numeric = true,
            "-c" | "--connection" => opts.conns = true,
            "--stats" => opts.stats = true,
            "--rate" => opts.rate = true,
            "--thresholds" => opts.thresholds = true,
            "--persistent-conn" => opts.persistent_conn = true,
            "--exact" | "-X" => opts.exact = true,
            // An address tells its own family; -6 makes a mark's service IPv6, and, as in
            // ipvsadm, it comes after -f.
            "-6" | "--ipv6" => match &svc {
                Some((p, _)) if p == "fwmark" => fwmark_v6 = true,
                _ => return Err("-6 used before -f".into()),
            },
            "--tun-type" => {
                let t = next.ok_or("--tun-type needs ipip, gue or gre")?;
                if t != "ipip" {
                    return Err(format!(
                        "--tun-type {t}: rvs tunnels with ipip only (gue and gre are not supported)"
                    ));
                }
                i += 1;
            }
            "--tun-port" | "--tun-nocsum" | "--tun-csum" | "--tun-remcsum" => {
                return Err(format!(
                    "{o}: only for gue/gre tunnels, which rvs does not support (ipip is)"
                ))
            }
            "--tun-info" => opts.tun_info = true,
            "--pe" => return Err("--pe: persistence engines (sip) are not supported by rvs".into()),
            "--timeout" => opts.timeout = true,
            "--health" => opts.health = true,
            "--daemon" => opts.daemon = true,
            "--routes" => opts.routes = true,
            "--nosort" => opts.nosort = true,
            "--marks" => opts.marks = true,
            "--add-mark" | "--delete-mark" => {
                set_cmd(&mut cmd, if o == "--add-mark" { 'k' } else { 'K' })?;
                let m = next.ok_or(format!("{o} needs a mark"))?;
                rule.mark = Some(parse_fwmark(m)? as i64);
                i += 1;
            }
            "--proto" | "--dest" | "--dports" => {
                let v = next.ok_or(format!("{o} needs a value"))?.clone();
                match o {
                    "--proto" => rule.protocol = Some(v),
                    "--dest" => rule.destination = Some(resolve_prefix(&v)?),
                    _ => rule.ports = Some(v),
                }
                rule_opts = true;
                i += 1;
            }
            "--sort" => opts.nosort = false,
            "--drain" => set_cmd(&mut cmd, 'w')?,
            "--undrain" => set_cmd(&mut cmd, 'W')?,
            "--start-daemon" | "--stop-daemon" => {
                set_cmd(&mut cmd, if o == "--start-daemon" { '1' } else { '0' })?;
                let st = next.ok_or(format!("{o} needs master or backup"))?;
                if st != "master" && st != "backup" {
                    return Err(format!("{o}: {st:?} is not master or backup"));
                }
                daemon.state = Some(st.clone());
                i += 1;
            }
            "--mcast-interface" => {
                daemon.mcast_interface =
                    Some(next.ok_or("--mcast-interface needs an interface name")?.clone());
                i += 1;
            }
            "--syncid" => {
                daemon.syncid = Some(num(next, "--syncid")?);
                i += 1;
            }
            "--sync-maxlen" => {
                daemon.sync_maxlen = Some(num(next, "--sync-maxlen")?);
                i += 1;
            }
            "--mcast-group" => {
                daemon.mcast_group = Some(next.ok_or("--mcast-group needs a multicast address")?.clone());
                i += 1;
            }
            "--mcast-port" => {
                daemon.mcast_port = Some(num(next, "--mcast-port")?);
                i += 1;
            }
            "--mcast-ttl" => {
                daemon.mcast_ttl = Some(num(next, "--mcast-ttl")?);
                i += 1;
            }
            other => return Err(format!("unknown option {other:?} (rvsadm -h lists them)")),
        }
        i += 1;
    }
    if let Some(c) = cmd {
        opt_check(c, given)?;
    }
    if rule_opts && !matches!(cmd, Some('k' | 'K')) {
        return Err("--proto, --dest and --dports go with --add-mark or --delete-mark".into());
    }
    if laddr.is_some() && !matches!(cmd, Some('P' | 'Q')) {
        return Err("-z goes with -P (--add-laddr) or -Q (--del-laddr)".into());
    }
    if (proxy_protocol.is_some() || toa.is_some()) && !matches!(cmd, Some('A' | 'E')) {
        return Err("--proxy-protocol and --toa go with -A or -E".into());
    }
    if matches!(cmd, Some('P' | 'Q' | 'G')) && given & !(1 << 2) != 0 {
        return Err("-P, -Q and -G take only a service (and -z)".into());
    }
    if matches!(cmd, Some('k' | 'K')) && given != 0 {
        return Err("--add-mark and --delete-mark take only --proto, --dest and --dports".into());
    }
    let to_id = |(p, a): (String, String)| -> Result<ServiceId, String> {
        if p == "fwmark" {
            return Ok(ServiceId::fwmark(parse_fwmark(&a)?, fwmark_v6));
        }
        service_id(&p, &a)
    };
    let need_svc = || -> Result<ServiceId, String> {
        let s = svc
            .clone()
            .ok_or("this command needs a service: -t|-u|--sctp-service VIP:port or -f MARK")?;
        to_id(s)
    };
    let raw_service = || -> Result<RawService, String> {
        let id = need_svc()?;
        if let Some(f) = &flags {
            let scheduler = sched.as_deref().unwrap_or("wlc");
            rvs_core::sched::SchedFlags::parse_for(f, scheduler).map_err(|e| e.to_string())?;
        }
        let nonempty = |s: String| (!s.is_empty()).then_some(s);
        Ok(RawService {
            protocol: nonempty(id.protocol),
            address: nonempty(id.address),
            fwmark: id.fwmark.map(i64::from),
            ipv6: id.ipv6.then_some(true),
            scheduler: Some(sched.clone().unwrap_or_else(|| "wlc".into())),
            flags: flags.clone(),
            persistence: persist.map(|p| p.unwrap_or(360)),
            netmask: netmask.clone(),
            announce: announce.clone(),
            sloppy,
            one_packet,
            proxy_protocol: proxy_protocol.clone(),
            toa,
            real: Vec::new(),
            ..RawService::default()
        })
    };
    // As in ipvsadm, -a and -e take the whole server: an omitted method is -g (direct
    // routing) and an omitted weight is 1, for -e too.
    let raw_real = || -> Result<RawReal, String> {
        let id = need_svc()?;
        let r = real.clone().ok_or("this command needs -r RIP[:port]")?;
        Ok(RawReal {
            address: Some(real_address(&r, port_proto(&id))?),
            method: Some(method.unwrap_or("dr").to_string()),
            weight: Some(weight.unwrap_or(1)),
            upper,
            lower,
            check: None,
        })
    };
    Ok(match cmd {
        None => {
            if args.is_empty() {
                Cmd::List { service: None, opts }
            } else {
                return Err("no command given (-A, -E, -D, -a, -e, -d, -L, -C, -R, -S, -Z, --set)".into());
            }
        }
        Some('A') => Cmd::AddService(raw_service()?),
        Some('E') => Cmd::EditService(raw_service()?),
        Some('D') => Cmd::DeleteService(need_svc()?),
        Some('C') => Cmd::Clear,
        Some('R') => Cmd::Restore,
        Some('S') => Cmd::Save {
            numeric: opts.numeric,
            nosort: opts.nosort,
            marks: opts.marks,
        },
        Some('P') | Some('Q') => {
            let id = need_svc()?;
            let a = laddr.clone().ok_or("-P and -Q need -z LOCAL-ADDRESS")?;
            if cmd == Some('P') {
                Cmd::AddLocalAddress(id, a)
            } else {
                Cmd::DeleteLocalAddress(id, a)
            }
        }
        Some('G') => Cmd::ListLocalAddresses(svc.clone().map(to_id).transpose()?),
        Some('k') => Cmd::AddMark(rule),
        Some('K') => Cmd::DeleteMark(rule),
        Some('a') => Cmd::AddReal(need_svc()?, raw_real()?),
        Some('e') => Cmd::EditReal(need_svc()?, raw_real()?),
        Some('d') => {
            let id = need_svc()?;
            let r = real.clone().ok_or("-d needs -r RIP[:port]")?;
            let addr = real_address(&r, port_proto(&id))?;
            Cmd::DeleteReal(id, addr)
        }
        Some('L') => Cmd::List {
            service: svc.clone().map(to_id).transpose()?,
            opts,
        },
        Some('Z') => Cmd::Zero(svc.clone().map(to_id).transpose()?),
        Some('s') => {
            let (t, f, u) = set.expect("parsed with --set");
            Cmd::SetTimeouts(t, f, u)
        }
        Some('1') => {
            // Checked here so a bad option is a command-line error (exit 2), as in ipvsadm.
            daemon.validate().map_err(|e| format!("--start-daemon: {e}"))?;
            Cmd::StartDaemon(daemon)
        }
        Some('w') => Cmd::Drain(true),
        Some('W') => Cmd::Drain(false),
        Some('0') => Cmd::StopDaemon(daemon.state.clone().expect("parsed with --stop-daemon")),
        Some('h') => Cmd::Help,
        Some('V') => Cmd::Version,
        Some(_) => unreachable!("every command letter is handled"),
    })
}

/// `a - b` as ipvsadm's comparators compute it: unsigned 32-bit words subtracted, the result
/// read as a C int (so two addresses more than 2^31 apart compare the "wrong" way, as there).
fn c_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// An address as ipvsadm compares it: its family (AF_INET 2, AF_INET6 10) and its 32-bit words.
fn addr_words(a: &str) -> (i32, Vec<u32>) {
    match a.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v)) => (2, vec![u32::from(v)]),
        Ok(std::net::IpAddr::V6(v)) => {
            let o = v.octets();
            (
                10,
                o.chunks(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        }
        Err(_) => (0, Vec::new()),
    }
}

/// libipvs's word-by-word address comparison: the first word that differs decides.
fn cmp_words(a: &[u32], b: &[u32]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| c_diff(x, y))
        .find(|&r| r != 0)
        .unwrap_or(0)
}

fn proto_number(p: &str) -> i32 {
    match p {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        _ => 0,
    }
}

/// Services and their real servers in ipvsadm's order (`ipvs_cmp_services`: fwmark, family,
/// protocol, address, port; `ipvs_cmp_dests`: address, port), as `-L` and `-S` print them
/// unless `--nosort`.
pub fn sort_like_ipvsadm(services: &mut [ServiceView]) {
    services.sort_by(|s1, s2| {
        let ((af1, a1), (af2, a2)) = (addr_words(&s1.address), addr_words(&s2.address));
        let mark = |s: &ServiceView| s.fwmark.unwrap_or(0);
        let r = [
            c_diff(mark(s1), mark(s2)),
            af1 - af2,
            proto_number(&s1.protocol) - proto_number(&s2.protocol),
        ]
        .into_iter()
        .find(|&r| r != 0)
        .unwrap_or_else(|| match cmp_words(&a1, &a2) {
            0 => s1.port as i32 - s2.port as i32,
            r => r,
        });
        r.cmp(&0)
    });
    for s in services {
        s.reals.sort_by(|d1, d2| {
            let (a1, a2) = (addr_words(&d1.address).1, addr_words(&d2.address).1);
            match cmp_words(&a1, &a2) {
                0 => (d1.port as i32 - d2.port as i32).cmp(&0),
                r => r.cmp(&0),
            }
        });
    }
}

fn proto_title(p: &str) -> &'static str {
    match p {
        "tcp" => "TCP",
        "udp" => "UDP",
        "fwmark" => "FWM",
        _ => "SCTP",
    }
}

fn method_title(m: &str) -> &'static str {
    match m {
        "nat" => "Masq",
        "tun" => "Tunnel",
        "fullnat" => "FullNat",
        _ => "Route",
    }
}

fn endpoint(addr: &str, port: u16, proto: &str, numeric: bool) -> String {
    let p = port_name(port, proto, numeric);
    if !numeric {
        if let Some(name) = reverse_name(addr) {
            return format!("{name}:{p}");
        }
    }
    if addr.contains(':') {
        format!("[{addr}]:{p}")
    } else {
        format!("{addr}:{p}")
    }
}

fn netmask_text(s: &ServiceView) -> Option<String> {
    let len = s.netmask?;
    let v6 = s.address.contains(':');
    let full = if v6 { 128 } else { 32 };
    if len == full {
        return None;
    }
    Some(if v6 {
        len.to_string()
    } else {
        std::net::Ipv4Addr::from(if len == 0 { 0 } else { u32::MAX << (32 - len) }).to_string()
    })
}

/// The protocol real servers' port names are looked up under (a mark's service: tcp's).
fn svc_proto(s: &ServiceView) -> &str {
    if s.fwmark.is_some() {
        "tcp"
    } else {
        &s.protocol
    }
}

/// ipvsadm's `svc_name` in listings: `TCP  10.0.0.1:80`, `FWM  1`, `FWM  1 IPv6`.
fn service_head(s: &ServiceView, numeric: bool) -> String {
    if let Some(m) = s.fwmark {
        let v6 = if s.address.contains(':') { " IPv6" } else { "" };
        return format!("FWM  {m}{v6}");
    }
    format!(
        "{:<4} {}",
        proto_title(&s.protocol),
        endpoint(&s.address, s.port, &s.protocol, numeric)
    )
}

/// ipvsadm's `svc_name` in `-S`: `-t 10.0.0.1:80`, `-f 1`, `-f 1 -6`.
fn service_rule(s: &ServiceView, numeric: bool) -> String {
    if let Some(m) = s.fwmark {
        let v6 = if s.address.contains(':') { " -6" } else { "" };
        return format!("-f {m}{v6}");
    }
    let flag = match s.protocol.as_str() {
        "tcp" => "-t",
        "udp" => "-u",
        _ => "--sctp-service",
    };
    format!("{flag} {}", endpoint(&s.address, s.port, &s.protocol, numeric))
}

/// ipvsadm's `print_largenum`: exact with --exact, else up to 8 digits as they are, then
/// thousands below a billion (K), millions below 100 billion (M), billions below 100 trillion
/// (G), then trillions (T).
fn largenum(n: u64, exact: bool) -> String {
    if exact || n < 100_000_000 {
        format!("{n:>8}")
    } else if n < 1_000_000_000 {
        format!("{:>7}K", n / 1_000)
    } else if n < 100_000_000_000 {
        format!("{:>7}M", n / 1_000_000)
    } else if n < 100_000_000_000_000 {
        format!("{:>7}G", n / 1_000_000_000)
    } else {
        format!("{:>7}T", n / 1_000_000_000_000)
    }
}

fn counters(st: &Stats, rate: bool, exact: bool) -> String {
    let v = if rate {
        [st.cps, st.in_pps, st.out_pps, st.in_bps, st.out_bps]
    } else {
        [st.conns, st.in_packets, st.out_packets, st.in_bytes, st.out_bytes]
    };
    v.iter()
        .map(|&n| largenum(n, exact))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `ipvsadm -L` in any of its forms.
pub fn fmt_list(table_size: usize, services: &[ServiceView], o: &ListOpts) -> String {
    let mut out = format!("IP Virtual Server version 1.2.1 (size={table_size})\n");
    out.push_str(&fmt_list_body(services, o));
    out
}

/// The listing without the version line: what `ipvsadm -L -t VIP:port` prints.
pub fn fmt_list_body(services: &[ServiceView], o: &ListOpts) -> String {
    let mut out = String::new();
    let (svc_head, real_head) = if o.stats {
        (
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
            "  -> RemoteAddress:Port",
        )
    } else if o.rate {
        (
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
            "  -> RemoteAddress:Port",
        )
    } else if o.thresholds {
        (
            "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn",
            "  -> RemoteAddress:Port",
        )
    } else if o.persistent_conn {
        (
            "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn",
            "  -> RemoteAddress:Port",
        )
    } else if o.tun_info {
        (
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn",
        )
    } else {
        (
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        )
    };
    let _ = writeln!(out, "{svc_head}\n{real_head}");
    for s in services {
        let head = service_head(s, o.numeric);
        if o.stats || o.rate {
            let _ = writeln!(out, "{head:<33} {}", counters(&s.stats, o.rate, o.exact));
        } else {
            let mut line = format!("{head} {}", s.scheduler);
            if !s.flags.is_empty() {
                let _ = write!(line, " ({})", s.flags.join(","));
            }
            if let Some(p) = s.persistence {
                let _ = write!(line, " persistent {p}");
            }
            if let Some(m) = netmask_text(s) {
                let _ = write!(line, " mask {m}");
            }
            if s.one_packet {
                line.push_str(" ops");
            }
            let _ = writeln!(out, "{line}");
        }
        for r in &s.reals {
            let ep = endpoint(&r.address, r.port, svc_proto(s), o.numeric);
            let _ = if o.stats || o.rate {
                writeln!(out, "  -> {ep:<28} {}", counters(&r.stats, o.rate, o.exact))
            } else if o.thresholds {
                writeln!(
                    out,
                    "  -> {ep:<28} {:<10} {:<10} {:<10} {:<10}",
                    r.upper, r.lower, r.active, r.inactive
                )
            } else if o.persistent_conn {
                writeln!(
                    out,
                    "  -> {ep:<28} {:<9} {:<11} {:<10} {:<10}",
                    r.weight, r.persistent, r.active, r.inactive
                )
            } else if o.tun_info {
                writeln!(
                    out,
                    "  -> {ep:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
                    method_title(&r.method),
                    if r.method == "tun" { "ipip" } else { "n/a" },
                    r.weight,
                    r.active,
                    r.inactive
                )
            } else {
                writeln!(
                    out,
                    "  -> {ep:<28} {:<7} {:<6} {:<10} {:<10}",
                    method_title(&r.method),
                    r.weight,
                    r.active,
                    r.inactive
                )
            };
        }
    }
    out
}

/// `ipvsadm -Lc`.
pub fn fmt_conns(conns: &[ConnView], numeric: bool) -> String {
    let mut out = String::from(
        "IPVS connection entries\npro expire state       source             virtual            destination\n",
    );
    for c in conns {
        let ep = |s: &str| {
            let (h, p) = split_hostport(s);
            let port: u16 = p.and_then(|p| p.parse().ok()).unwrap_or(0);
            endpoint(&h, port, &c.protocol.to_lowercase(), numeric)
        };
        let _ = writeln!(
            out,
            "{:<3} {:02}:{:02}  {:<11} {:<18} {:<18} {}",
            c.protocol,
            c.expires / 60,
            c.expires % 60,
            c.state,
            ep(&c.client),
            ep(&c.virtual_),
            ep(&c.destination)
        );
    }
    out
}

/// `rvsadm -L --health`: per service its quorum, per real server its check, state, weights,
/// streaks, transitions and last result with its age.
pub fn fmt_health(services: &[rvs_api::proto::HealthServiceView]) -> String {
    let mut out = String::from(
        "Prot LocalAddress:Port            Quorum     LiveWeight Sorry\n  -> RemoteAddress:Port           Check  State     Weight Effective Ok   Fail Trans  Age      Last\n",
    );
    for s in services {
        let quorum = if s.quorum == 0 {
            "-".to_string()
        } else {
            format!("{}{}", if s.quorum_up { "" } else { "lost " }, s.quorum)
        };
        let _ = writeln!(
            out,
            "{:<4} {:<28} {:<10} {:<10} {}",
            proto_title(&s.protocol),
            s.service,
            quorum,
            s.live_weight,
            s.sorry_server.as_deref().unwrap_or("-")
        );
        for r in &s.reals {
            let age = r
                .age_ms
                .map_or("-".to_string(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
            let _ = writeln!(
                out,
                "  -> {:<28} {:<6} {:<9} {:<6} {:<9} {:<4} {:<4} {:<6} {:<8} {}",
                r.address,
                r.check,
                r.state,
                r.weight,
                r.effective_weight,
                r.successes,
                r.failures,
                r.transitions,
                age,
                r.last
            );
        }
    }
    out
}

/// `rvsadm -L --marks`: the classifier's rules in order (the first a new flow matches wins).
pub fn fmt_marks(marks: &[rvs_api::mark::MarkConfig]) -> String {
    let mut out = String::from("Mark       Prot Destination                              Ports\n");
    for m in marks {
        let _ = writeln!(
            out,
            "{:<10} {:<4} {:<40} {}",
            m.mark,
            m.protocol.map_or("all", |p| p.name()),
            format!("{}/{}", m.dst, m.prefix_len),
            m.ports_text().unwrap_or_else(|| "all".into())
        );
    }
    out
}

/// `-G` (DPVS's `--get-laddr`): each local address of each service, one line each.
pub fn fmt_laddrs(services: &[ServiceView]) -> String {
    let mut out = format!("{:<28} {:<7} {}\n", "VIP:VPORT", "TOTAL", "SNAT_IP");
    for s in services.iter().filter(|s| !s.local_addresses.is_empty()) {
        let vs = match s.fwmark {
            Some(m) => format!("FWM {m}"),
            None => std::net::SocketAddr::new(
                s.address
                    .parse()
                    .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
                s.port,
            )
            .to_string(),
        };
        for a in &s.local_addresses {
            let _ = writeln!(out, "{vs:<28} {:<7} {a}", s.local_addresses.len());
        }
    }
    out
}

/// `ipvsadm -S`: commands that rebuild the table.
pub fn fmt_save(services: &[ServiceView], numeric: bool) -> String {
    let mut out = String::new();
    for s in services {
        let vs = service_rule(s, numeric);
        let mut line = format!("-A {vs} -s {}", s.scheduler);
        if !s.flags.is_empty() {
            let _ = write!(line, " -b {}", s.flags.join(","));
        }
        if let Some(p) = s.persistence {
            let _ = write!(line, " -p {p}");
        }
        if let Some(m) = netmask_text(s) {
            let _ = write!(line, " -M {m}");
        }
        if s.one_packet {
            line.push_str(" -o");
        }
        if let Some(a) = &s.announce {
            let _ = write!(line, " --announce {a}");
        }
        if s.sloppy {
            line.push_str(" --sloppy");
        }
        if let Some(p) = &s.proxy_protocol {
            let _ = write!(line, " --proxy-protocol {p}");
        }
        if s.toa {
            line.push_str(" --toa on");
        }
        let _ = writeln!(out, "{line}");
        for a in &s.local_addresses {
            let _ = writeln!(out, "-P {vs} -z {a}");
        }
        for r in &s.reals {
            let m = match r.method.as_str() {
                "nat" => "-m",
                "tun" => "-i",
                "fullnat" => "--fullnat",
                _ => "-g",
            };
            let mut line = format!(
                "-a {vs} -r {} {m} -w {}",
                endpoint(&r.address, r.port, svc_proto(s), numeric),
                r.weight
            );
            // ipvsadm 1.31 names the tunnel type of an IP-in-IP server.
            if r.method == "tun" {
                line.push_str(" --tun-type ipip");
            }
            if r.upper != 0 {
                let _ = write!(line, " -x {}", r.upper);
            }
            if r.lower != 0 {
                let _ = write!(line, " -y {}", r.lower);
            }
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

#[cfg(test)]
mod tests;

/// `rvsadm 0.1.0 (ipvsadm v1.31 command line)`.
pub fn version_line() -> String {
    format!(
        "rvsadm {} (ipvsadm v1.31 command line and output; rvsd's control protocol)",
        env!("CARGO_PKG_VERSION")
    )
}
