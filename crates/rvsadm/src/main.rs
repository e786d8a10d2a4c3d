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

use rvs_api::config::DEFAULT_SOCKET;
use rvs_api::proto::{Op, Reply, Request, Response, ServiceView};
use rvsadm::{self as ipvsadm, Cmd};

const USAGE: &str = "\
rvsadm (ipvsadm-compatible) -- rvs administration over the control socket
Usage:
  rvsadm -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags] [-o]
         [--announce always|follow-host] [--sloppy|--no-sloppy]
         [--proxy-protocol v1|v2|off] [--toa on|off]
  rvsadm -D virtual-service
  rvsadm -C
  rvsadm -R
  rvsadm -S [-n] [--marks]
  rvsadm -a|e virtual-service -r server-address [options]
  rvsadm -d virtual-service -r server-address
  rvsadm -L|l [virtual-service] [options]
  rvsadm -Z [virtual-service]
  rvsadm -P|Q virtual-service -z local-address
  rvsadm -G [virtual-service]
  rvsadm --set tcp tcpfin udp
  rvsadm --start-daemon {master|backup} --mcast-interface IF [--syncid N] [--sync-maxlen N]
         [--mcast-group A] [--mcast-port P] [--mcast-ttl T]
  rvsadm --stop-daemon {master|backup}
  rvsadm --drain | --undrain
  rvsadm --add-mark|--delete-mark MARK [--proto tcp|udp|sctp] --dest ADDR[/LEN] [--dports LIST]
  rvsadm -h | -v | -V

Commands (long or short, as ipvsadm):
  --add-service     -A        add a virtual service with options
  --edit-service    -E        edit a virtual service with options
  --delete-service  -D        delete a virtual service
  --clear           -C        clear the whole table
  --restore         -R        run the commands on standard input, one per line (adds; a bad
                              line is reported with its number, the others still run)
  --save            -S        write the table in -R's format to standard output
  --add-server      -a        add a real server with options
  --edit-server     -e        edit a real server with options
  --delete-server   -d        delete a real server
  --list            -L|-l     list the table
  --zero            -Z        zero the counters of a service or all
  --add-laddr       -P        (DPVS) add a FullNAT local address (-z) to a service
  --del-laddr       -Q        (DPVS) remove one: new connections stop using it, made ones go on
  --get-laddr       -G        (DPVS) list the local addresses of a service or all
  --set tcp tcpfin udp        set the connection timeouts (0: keep)
  --start-daemon              start the IPVS connection sync daemon (master or backup)
  --stop-daemon               stop it
  --add-mark MARK             (rvs) append a classifier rule: new flows to --dest (an address,
                              answered for ARP/ND, or a prefix routed here), of --proto (default
                              all) and --dports (80,443,8000-8080; default all) get MARK, for
                              -f MARK services; the first matching rule wins
  --delete-mark MARK          (rvs) remove the rule given with the same options
  --drain, --undrain          (rvs) withdraw this director's routes while its connections go
                              on ([routes]); announce them again
  --help            -h        this help
  --version         -v|-V     rvsadm's version

Options:
  --tcp-service  -t service-address   host[:port], [IPv6]:port; names are resolved
  --udp-service  -u service-address
  --sctp-service    service-address
  --fwmark-service -f fwmark          a firewall-mark service (marks come from --add-mark rules)
  --ipv6         -6                   after -f: the mark's IPv6 service (an address tells its
                                      own family)
  --scheduler    -s scheduler         rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos
                                      (default wlc)
  --persistent   -p [timeout]         persistent service (default 360 s)
  --netmask      -M netmask           persistence granularity (a mask or a prefix length)
  --ops          -o                   one-packet scheduling (UDP)
  --sched-flags  -b flags             sh-fallback,sh-port | mh-fallback,mh-port | flag-1,flag-2
  --pe engine                         (persistence engines are not supported: refused)
  --real-server  -r server-address    host or host:port
  --gatewaying   -g                   direct routing (default)
  --ipip         -i                   IP-in-IP tunnel
  --masquerading -m                   NAT
  --fullnat                           FullNAT: the server sees a local address, not the client
                                      (DPVS's -b; here -b stays ipvsadm's --sched-flags)
  --laddr        -z local-address     with -P/-Q: a FullNAT local address
  --proxy-protocol v1|v2|off          (rvs) FullNAT over TCP: the PROXY header before the
                                      client's first byte (default off)
  --toa on|off                        (rvs) FullNAT over TCP: the client's address in a TCP
                                      option (TOA, kind 254; default off)
  --tun-type ipip                     the only tunnel type (gue/gre refused)
  --weight       -w weight            0..65535 (0: quiesced)
  --u-threshold  -x uthreshold        overloaded at this many connections (0: none)
  --l-threshold  -y lthreshold        available again below this many
  --mcast-interface IF                the sync daemon's interface (a port's twin)
  --syncid N --sync-maxlen N --mcast-group A --mcast-port P --mcast-ttl T
  --connection   -c                   list the connections
  --timeout                           list the timeouts
  --daemon                            list the sync daemons (with --stats, their counters)
  --stats                             list with statistics
  --rate                              list with rates
  --thresholds                        list with thresholds
  --persistent-conn                   list with persistent connections
  --nosort                            keep the daemon's order
  --sort                              ipvsadm's order (default)
  --exact        -X                   exact numbers
  --numeric      -n                   numeric addresses and ports
  --tun-info                          list with each real server's tunnel type
  --announce always|follow-host       (rvs) answer the VIP always, or while a twin holds it
  --sloppy, --no-sloppy               (rvs) take flows over mid-stream (mh, sh, dh only)
  --health                            (rvs) list health checks and quorums
  --routes                            (rvs) list the VIPs announced to the routing daemon
  --marks                             (rvs) with -L: list the mark rules; with -S: write them
                                      first, as --add-mark lines
  --socket PATH                       (rvs) the control socket (default $RVS_SOCKET, else
                                      /run/rvs/rvs.sock)
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

impl Client {
    /// The classifier's rules, in order.
    fn marks(&mut self) -> Result<Vec<rvs_api::mark::MarkConfig>, String> {
        match self.call(Op::Marks {})? {
            Some(Reply::Marks { marks }) => marks
                .iter()
                .map(|m| rvs_api::mark::validate_mark(m, "mark").map_err(|e| e.join("; ")))
                .collect(),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }
}

/// The op a changing command sends; the command itself back for listings, help, version and
/// restore (boxed: it is large, and this is not a hot path).
fn change_op(cmd: Cmd) -> Result<Op, Box<Cmd>> {
    Ok(match cmd {
        Cmd::AddService(s) => Op::AddService { service: s },
        Cmd::EditService(s) => Op::EditService { service: s },
        Cmd::DeleteService(id) => Op::DeleteService { service: id },
        Cmd::Clear => Op::Clear {},
        Cmd::AddReal(id, r) => Op::AddReal { service: id, real: r },
        Cmd::EditReal(id, r) => Op::EditReal { service: id, real: r },
        Cmd::DeleteReal(id, a) => Op::DeleteReal {
            service: id,
            address: a,
        },
        Cmd::Zero(id) => Op::Zero { service: id },
        Cmd::SetTimeouts(t, f, u) => Op::SetTimeouts {
            tcp: t,
            tcpfin: f,
            udp: u,
        },
        Cmd::StartDaemon(daemon) => Op::StartDaemon { daemon },
        Cmd::StopDaemon(state) => Op::StopDaemon { state },
        Cmd::Drain(drain) => Op::Drain { drain },
        Cmd::AddMark(mark) => Op::AddMark { mark },
        Cmd::DeleteMark(mark) => Op::DeleteMark { mark },
        Cmd::AddLocalAddress(service, address) => Op::AddLocalAddress { service, address },
        Cmd::DeleteLocalAddress(service, address) => Op::DeleteLocalAddress { service, address },
        other => return Err(Box::new(other)),
    })
}

/// `-R`, as ipvsadm does it: each line of standard input is a command, run in order; a line
/// that fails (unreadable, or refused by rvsd) is reported with its number and the rest goes
/// on. It adds to the table; empty input changes nothing. Err when any line failed (ipvsadm
/// keeps only the last line's status). Lines travel in batches (one request line each, well
/// under the socket's limit), each published to the workers once.
fn restore(client: &mut Client, text: &str) -> Result<(), String> {
    const BATCH_BYTES: usize = rvs_api::proto::MAX_LINE / 2;
    let mut failed = 0;
    let mut batch: Vec<(usize, Op)> = Vec::new();
    let mut bytes = 0;
    let mut send = |batch: &mut Vec<(usize, Op)>, failed: &mut usize| -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let (lines, ops): (Vec<usize>, Vec<Op>) = std::mem::take(batch).into_iter().unzip();
        match client.call(Op::Batch { ops })? {
            Some(Reply::Batch { errors }) => {
                for (n, e) in lines.iter().zip(errors) {
                    if let Some(e) = e {
                        eprintln!("rvsadm: line {n}: {}", e.message);
                        *failed += 1;
                    }
                }
                Ok(())
            }
            other => Err(format!("unexpected answer {other:?}")),
        }
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        let op = ipvsadm::parse(&args).and_then(|cmd| {
            change_op(cmd).map_err(|other| format!("{other:?} does not change the table: not in a rule file"))
        });
        match op {
            Ok(op) => {
                let len = serde_json::to_string(&op).map_or(0, |j| j.len() + 1);
                if bytes + len > BATCH_BYTES {
                    send(&mut batch, &mut failed)?;
                    bytes = 0;
                }
                bytes += len;
                batch.push((n + 1, op));
            }
            Err(e) => {
                // Earlier lines go first: the file's order is kept.
                send(&mut batch, &mut failed)?;
                bytes = 0;
                eprintln!("rvsadm: line {}: {e}", n + 1);
                failed += 1;
            }
        }
    }
    send(&mut batch, &mut failed)?;
    match failed {
        0 => Ok(()),
        n => Err(format!(
            "{n} line(s) of the restore failed; the others were applied"
        )),
    }
}

fn run(cmd: Cmd, socket: &str) -> Result<(), String> {
    let c = || Client::connect(socket);
    let cmd = match change_op(cmd) {
        Ok(op) => {
            c()?.call(op)?;
            return Ok(());
        }
        Err(cmd) => *cmd,
    };
    match cmd {
        Cmd::Help => print!("{USAGE}"),
        Cmd::Version => println!("{}", ipvsadm::version_line()),
        Cmd::Save {
            numeric,
            nosort,
            marks,
        } => {
            let mut client = c()?;
            if marks {
                for m in client.marks()? {
                    println!("{m}");
                }
            }
            let (_, mut services) = client.services(None)?;
            if !nosort {
                ipvsadm::sort_like_ipvsadm(&mut services);
            }
            print!("{}", ipvsadm::fmt_save(&services, numeric));
        }
        Cmd::Restore => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("reading stdin: {e}"))?;
            restore(&mut c()?, &text)?;
        }
        Cmd::ListLocalAddresses(service) => {
            let (_, mut services) = c()?.services(service)?;
            ipvsadm::sort_like_ipvsadm(&mut services);
            print!("{}", ipvsadm::fmt_laddrs(&services));
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
            } else if opts.marks {
                print!("{}", ipvsadm::fmt_marks(&client.marks()?));
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
                let one = service.is_some();
                let (size, mut services) = client.services(service)?;
                if !opts.nosort {
                    ipvsadm::sort_like_ipvsadm(&mut services);
                }
                if one {
                    // ipvsadm lists one service without the version line.
                    print!("{}", ipvsadm::fmt_list_body(&services, &opts));
                } else {
                    print!("{}", ipvsadm::fmt_list(size, &services, &opts));
                }
            }
        }
        changing => unreachable!("{changing:?} was sent above"),
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
