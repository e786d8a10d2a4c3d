//! rvsadm: ipvsadm's command line and output, over rvsd's control socket.
//!
//!   rvsadm -A -t 10.0.0.100:80 -s wlc
//!   rvsadm -a -t 10.0.0.100:80 -r 192.168.1.2:8080 -m -w 2
//!   rvsadm -Ln --stats
//!   rvsadm -S -n > rules; rvsadm -C; rvsadm -R < rules
//!
//! The socket is `--socket PATH`, else `$RVS_SOCKET`, else /run/rvs/rvs.sock. Exit status:
//! 0 on success, 1 when the daemon refuses or cannot be reached, 2 for a bad command line.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rvs::ipvsadm::{self, Cmd};
use rvs_api::config::{RawService, DEFAULT_SOCKET};
use rvs_api::proto::{Op, Reply, Request, Response, ServiceView};

const USAGE: &str = "\
rvsadm (ipvsadm-compatible) -- rvs administration over the control socket
Usage:
  rvsadm -A|E -t|u|--sctp-service VIP:port [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags]
         [--announce always|follow-host]   (rvs: answer the VIP only while a twin holds it)
         [--sloppy|--no-sloppy]            (rvs: take flows over mid-stream; mh, sh, dh only)
  rvsadm -D -t|u|--sctp-service VIP:port
  rvsadm -C
  rvsadm -R                       (restore rules from stdin, ipvsadm -S format)
  rvsadm -S [-n]
  rvsadm -a|e -t|u|--sctp-service VIP:port -r RIP[:port] [-g|-i|-m] [-w weight] [-x upper] [-y lower]
  rvsadm -d -t|u|--sctp-service VIP:port -r RIP[:port]
  rvsadm -L|l [-t|u|--sctp-service VIP:port] [-n] [-c] [--stats] [--rate] [--thresholds]
         [--persistent-conn] [--exact] [--timeout] [--health]
  rvsadm -Z [-t|u|--sctp-service VIP:port]
  rvsadm --set tcp tcpfin udp
  rvsadm --start-daemon master|backup --mcast-interface IF [--syncid N] [--sync-maxlen N]
         [--mcast-group A] [--mcast-port P] [--mcast-ttl T]
  rvsadm --stop-daemon master|backup
  rvsadm -L --daemon              (the sync daemons; -L --daemon --stats adds rvs's sync counters)
  rvsadm --drain | --undrain      (rvs: withdraw this director's routes, connections go on; or not)
  rvsadm -L --routes              (rvs: the VIPs announced to the routing daemon, and why not others)
  rvsadm --socket PATH ...        (default $RVS_SOCKET, else /run/rvs/rvs.sock)
  rvsadm -V | -h
";

struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    next: u64,
}

impl Client {
    fn connect(path: &str) -> Result<Client, String> {
        let stream = UnixStream::connect(path).map_err(|e| {
            format!("cannot reach rvsd at {path}: {e} (is it running? --socket or RVS_SOCKET select another)")
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        Ok(Client {
            stream,
            reader,
            next: 1,
        })
    }

    fn call(&mut self, op: Op) -> Result<Option<Reply>, String> {
        let id = self.next;
        self.next += 1;
        writeln!(self.stream, "{}", Request { id, op }.to_line())
            .map_err(|e| format!("sending to rvsd: {e}"))?;
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| format!("reading from rvsd: {e}"))?;
        let r: Response = serde_json::from_str(&line)
            .map_err(|e| format!("rvsd answered something unreadable ({e}): {line}"))?;
        if r.ok {
            Ok(r.result)
        } else {
            Err(r
                .error
                .map_or_else(|| "rvsd refused without a reason".into(), |e| e.message))
        }
    }

    fn services(
        &mut self,
        service: Option<rvs_api::proto::ServiceId>,
    ) -> Result<(usize, Vec<ServiceView>), String> {
        match self.call(Op::List { service })? {
            Some(Reply::Services { table_size, services }) => Ok((table_size, services)),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }
}

/// Reads `ipvsadm -S` lines into services with their real servers.
/// A restore cut into request lines well under the socket's limit: services first, then their
/// real servers, continuing a service across parts where it is long.
fn restore_parts(services: Vec<RawService>) -> Vec<Vec<RawService>> {
    const PART: usize = rvs_api::proto::MAX_LINE / 2;
    let len = |x: &RawService| serde_json::to_string(x).map_or(0, |j| j.len() + 1);
    let mut parts: Vec<Vec<RawService>> = vec![Vec::new()];
    let mut size = 0;
    for s in services {
        let mut reals = s.real.clone().into_iter();
        let mut entry = RawService {
            real: Vec::new(),
            ..s
        };
        let mut entry_len = len(&entry);
        loop {
            let next = reals.next();
            let add = next
                .as_ref()
                .map_or(0, |r| serde_json::to_string(r).map_or(0, |j| j.len() + 1));
            if next.is_none() || size + entry_len + add > PART {
                // Close this entry (and, if full, the part).
                let key = (entry.protocol.clone(), entry.address.clone());
                parts.last_mut().expect("one part at least").push(entry);
                size += entry_len;
                let Some(r) = next else { break };
                if size + add > PART {
                    parts.push(Vec::new());
                    size = 0;
                }
                entry = RawService {
                    protocol: key.0,
                    address: key.1,
                    real: vec![r],
                    ..Default::default()
                };
                entry_len = len(&entry);
            } else if let Some(r) = next {
                entry.real.push(r);
                entry_len += add;
            }
        }
    }
    parts
}

fn read_rules(text: &str) -> Result<Vec<RawService>, String> {
    let mut services: Vec<RawService> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        match ipvsadm::parse(&args).map_err(|e| format!("line {}: {e}", n + 1))? {
            Cmd::AddService(s) => services.push(s),
            Cmd::AddReal(id, r) => {
                let s = services
                    .iter_mut()
                    .find(|s| {
                        s.protocol.as_deref() == Some(&id.protocol)
                            && s.address.as_deref() == Some(&id.address)
                    })
                    .ok_or_else(|| format!("line {}: -a for a service not added above", n + 1))?;
                s.real.push(r);
            }
            other => {
                return Err(format!(
                    "line {}: only -A and -a belong in a rule file, not {other:?}",
                    n + 1
                ))
            }
        }
    }
    Ok(services)
}

fn run(cmd: Cmd, socket: &str) -> Result<(), String> {
    let c = || Client::connect(socket);
    match cmd {
        Cmd::Help => print!("{USAGE}"),
        Cmd::Version => println!("{}", rvs::version_line("rvsadm")),
        Cmd::AddService(s) => {
            c()?.call(Op::AddService { service: s })?;
        }
        Cmd::EditService(s) => {
            c()?.call(Op::EditService { service: s })?;
        }
        Cmd::DeleteService(id) => {
            c()?.call(Op::DeleteService { service: id })?;
        }
        Cmd::Clear => {
            c()?.call(Op::Clear {})?;
        }
        Cmd::AddReal(id, r) => {
            c()?.call(Op::AddReal { service: id, real: r })?;
        }
        Cmd::EditReal(id, r) => {
            c()?.call(Op::EditReal { service: id, real: r })?;
        }
        Cmd::DeleteReal(id, a) => {
            c()?.call(Op::DeleteReal {
                service: id,
                address: a,
            })?;
        }
        Cmd::Zero(id) => {
            c()?.call(Op::Zero { service: id })?;
        }
        Cmd::SetTimeouts(t, f, u) => {
            c()?.call(Op::SetTimeouts {
                tcp: t,
                tcpfin: f,
                udp: u,
            })?;
        }
        Cmd::StartDaemon(daemon) => {
            c()?.call(Op::StartDaemon { daemon })?;
        }
        Cmd::StopDaemon(state) => {
            c()?.call(Op::StopDaemon { state })?;
        }
        Cmd::Drain(drain) => {
            c()?.call(Op::Drain { drain })?;
        }
        Cmd::Save { numeric } => {
            let (_, services) = c()?.services(None)?;
            print!("{}", ipvsadm::fmt_save(&services, numeric));
        }
        Cmd::Restore => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("reading stdin: {e}"))?;
            let services = read_rules(&text)?;
            let mut client = c()?;
            let parts = restore_parts(services);
            let last = parts.len() - 1;
            for (k, services) in parts.into_iter().enumerate() {
                client.call(Op::Restore {
                    services,
                    more: k < last,
                })?;
            }
        }
        Cmd::List { service, opts } => {
            let mut client = c()?;
            if opts.routes {
                if let Some(Reply::Routes {
                    interface,
                    drained,
                    announced,
                    withdrawn,
                }) = client.call(Op::Routes {})?
                {
                    match interface {
                        None => println!("no [routes]: VIPs are not published for a routing daemon"),
                        Some(i) => {
                            println!("routes on {i}{}", if drained { " (drained)" } else { "" });
                            for a in announced {
                                println!("  {a:<40} announced");
                            }
                            for (a, why) in withdrawn {
                                println!("  {a:<40} withdrawn: {why}");
                            }
                        }
                    }
                }
            } else if opts.daemon {
                if let Some(Reply::Daemons { daemons, counters }) = client.call(Op::Daemons {})? {
                    for d in &daemons {
                        println!("{}", d.line());
                    }
                    if opts.stats {
                        for (name, v) in &counters {
                            println!("{name:<28}{v}");
                        }
                    }
                }
            } else if opts.timeout {
                if let Some(Reply::Timeouts { tcp, tcpfin, udp }) = client.call(Op::GetTimeouts {})? {
                    println!("Timeout (tcp tcpfin udp): {tcp} {tcpfin} {udp}");
                }
            } else if opts.health {
                if let Some(Reply::Health { services }) = client.call(Op::Health {})? {
                    print!("{}", ipvsadm::fmt_health(&services));
                }
            } else if opts.conns {
                if let Some(Reply::Connections { conns }) = client.call(Op::Connections {})? {
                    print!("{}", ipvsadm::fmt_conns(&conns, opts.numeric));
                }
            } else {
                let (size, services) = client.services(service)?;
                print!("{}", ipvsadm::fmt_list(size, &services, &opts));
            }
        }
    }
    Ok(())
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut socket = std::env::var("RVS_SOCKET").unwrap_or_else(|_| DEFAULT_SOCKET.into());
    if let Some(i) = args
        .iter()
        .position(|a| a == "--socket" || a.starts_with("--socket="))
    {
        let a = args.remove(i);
        socket = match a.strip_prefix("--socket=") {
            Some(v) => v.to_string(),
            None if i < args.len() => args.remove(i),
            None => {
                eprintln!("rvsadm: --socket needs a path");
                std::process::exit(2);
            }
        };
    }
    let cmd = match ipvsadm::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvsadm: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(cmd, &socket) {
        eprintln!("rvsadm: {e}");
        std::process::exit(1);
    }
}
