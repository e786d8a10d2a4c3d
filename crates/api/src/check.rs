//! Health checks of real servers: the `[service.check]` / `[service.real.check]` schema and its
//! validation. A real server's check is the service's with the real server's own fields laid
//! over it, so `[service.real.check] port = 8081` changes only the port.
//!
//! ```toml
//! [service.check]
//! type = "http"          # tcp | http | https | udp | exec | agent
//! interval = "1s"        # between probes (default 2s); "500ms", "1.5s" or a number of seconds
//! timeout = "500ms"      # per probe (default 1s)
//! rise = 2               # successes that bring a failed server back (default 2)
//! fall = 2               # failures that take it out (default 3)
//! alpha = false          # start down until the first success (keepalived's alpha)
//! port = 8080            # default: the real server's port
//! path = "/health"       # http/https: GET this (default /)
//! host = "www.example"   # http/https: the Host header (default: the server's address)
//! status = [200]         # http/https: accepted status codes (default 200..=399)
//! body = "OK"            # http/https: the body must contain this
//! verify = true          # https: verify the certificate (default false)
//! ca_file = "/etc/rvs/ca.pem"  # https with verify: trusted CAs (default: the system's)
//! payload = "ping"       # udp: what to send
//! expect = "pong"        # udp: the reply must contain this (default: any reply)
//! command = ["/usr/local/bin/check", "arg"]  # exec: exit 0 up, 1 down, 2..255 up with weight exit-2
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration as written: a number of seconds, or text such as `"500ms"`, `"2s"`, `"1.5s"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawDuration {
    Secs(i64),
    Text(String),
}

impl RawDuration {
    pub fn parse(&self) -> Option<Duration> {
        match self {
            RawDuration::Secs(s) => u64::try_from(*s).ok().map(Duration::from_secs),
            RawDuration::Text(t) => {
                let t = t.trim();
                let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
                    (n, 0.001)
                } else if let Some(n) = t.strip_suffix('s') {
                    (n, 1.0)
                } else {
                    (t, 1.0)
                };
                let v: f64 = num.trim().parse().ok()?;
                (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v * scale))
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCheck {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<RawDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<RawDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rise: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fall: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Vec<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

impl RawCheck {
    /// `self` with every field `over` sets replaced by `over`'s.
    pub fn overlaid(&self, over: &RawCheck) -> RawCheck {
        macro_rules! pick {
            ($($f:ident),*) => {
                RawCheck { $($f: over.$f.clone().or_else(|| self.$f.clone()),)* }
            };
        }
        pick!(
            kind, interval, timeout, rise, fall, alpha, port, path, host, status, body, verify, ca_file,
            payload, expect, command
        )
    }
}

/// TLS for `https` checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub verify: bool,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connection is accepted.
    Tcp,
    Http {
        tls: Option<Tls>,
        path: String,
        host: Option<String>,
        /// Accepted status codes; empty means 200..=399.
        status: Vec<u16>,
        body: Option<String>,
    },
    /// `payload` is sent; a reply (containing `expect`, if given) is a success.
    Udp {
        payload: Vec<u8>,
        expect: Option<String>,
    },
    /// The command's exit status: 0 up, 1 down, 2..=255 up with weight status-2.
    Exec { command: Vec<String> },
    /// HAProxy's agent-check text protocol on `port`.
    Agent,
}

impl CheckKind {
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http { tls: None, .. } => "http",
            CheckKind::Http { tls: Some(_), .. } => "https",
            CheckKind::Udp { .. } => "udp",
            CheckKind::Exec { .. } => "exec",
            CheckKind::Agent => "agent",
        }
    }
}

/// A validated check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    pub kind: CheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub alpha: bool,
    /// Where to probe; None: the real server's port.
    pub port: Option<u16>,
}

/// Problems found, as `(field, message)`.
struct Problems<'a>(&'a mut Vec<(String, String)>, bool);

impl Problems<'_> {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_string(), message.into()));
        self.1 = true;
    }

    fn duration(&mut self, field: &str, v: &Option<RawDuration>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(d) => match d.parse() {
                Some(x) if x >= Duration::from_millis(10) && x <= Duration::from_secs(3600) => x,
                _ => {
                    self.add(
                        field,
                        format!("{d:?} is not a duration from 10ms to 3600s (\"500ms\", \"2s\", 2)"),
                    );
                    default
                }
            },
        }
    }

    fn count(&mut self, field: &str, v: Option<i64>, default: u32) -> u32 {
        match v {
            None => default,
            Some(n) if (1..=100).contains(&n) => n as u32,
            Some(n) => {
                self.add(field, format!("{n} is outside 1..=100"));
                default
            }
        }
    }

    /// Fields of another check type that were set anyway.
    fn not_for(&mut self, kind: &str, fields: &[(&str, bool)]) {
        for (f, set) in fields {
            if *set {
                self.add(f, format!("does not apply to a {kind} check"));
            }
        }
    }
}

/// Validates `raw`; every problem is pushed as `(field, message)`.
pub fn validate_check(raw: &RawCheck, errors: &mut Vec<(String, String)>) -> Option<CheckConfig> {
    let mut p = Problems(errors, false);
    let interval = p.duration("interval", &raw.interval, Duration::from_secs(2));
    let timeout = p.duration("timeout", &raw.timeout, Duration::from_secs(1));
    let rise = p.count("rise", raw.rise, 2);
    let fall = p.count("fall", raw.fall, 3);
    let port = match raw.port {
        None => None,
        Some(x) if (1..=65535).contains(&x) => Some(x as u16),
        Some(x) => {
            p.add("port", format!("{x} is not a port (1..=65535)"));
            None
        }
    };
    let http = [
        ("path", raw.path.is_some()),
        ("host", raw.host.is_some()),
        ("status", raw.status.is_some()),
        ("body", raw.body.is_some()),
        ("verify", raw.verify.is_some()),
        ("ca_file", raw.ca_file.is_some()),
    ];
    let udp = [
        ("payload", raw.payload.is_some()),
        ("expect", raw.expect.is_some()),
    ];
    let exec = [("command", raw.command.is_some())];
    let name = raw.kind.as_deref().unwrap_or("");
    let kind = match name {
        "tcp" | "agent" => {
            p.not_for(name, &http);
            p.not_for(name, &udp);
            p.not_for(name, &exec);
            if name == "agent" && port.is_none() {
                p.add("port", "an agent check needs the agent's port");
            }
            if name == "tcp" {
                CheckKind::Tcp
            } else {
                CheckKind::Agent
            }
        }
        "http" | "https" => {
            p.not_for(name, &udp);
            p.not_for(name, &exec);
            http_kind(raw, name == "https", &mut p)
        }
        "udp" => {
            p.not_for(name, &http);
            p.not_for(name, &exec);
            CheckKind::Udp {
                payload: raw.payload.clone().unwrap_or_default().into_bytes(),
                expect: raw.expect.clone(),
            }
        }
        "exec" => {
            p.not_for(name, &http);
            p.not_for(name, &udp);
            let command = raw.command.clone().unwrap_or_default();
            match command.first() {
                None => p.add("command", "missing: the program and its arguments"),
                Some(prog) => {
                    if let Some(why) = program_problem(prog) {
                        p.add("command", format!("{prog:?} {why}"));
                    }
                }
            }
            CheckKind::Exec { command }
        }
        "" => {
            p.add("type", "missing: one of tcp, http, https, udp, exec, agent");
            CheckKind::Tcp
        }
        other => {
            p.add(
                "type",
                format!("{other:?} is not one of tcp, http, https, udp, exec, agent"),
            );
            CheckKind::Tcp
        }
    };
    if timeout > interval {
        p.add(
            "timeout",
            format!("{timeout:?} is longer than the interval {interval:?}"),
        );
    }
    (!p.1).then_some(CheckConfig {
        kind,
        interval,
        timeout,
        rise,
        fall,
        alpha: raw.alpha.unwrap_or(false),
        port,
    })
}

fn http_kind(raw: &RawCheck, https: bool, p: &mut Problems) -> CheckKind {
    let mut status = Vec::new();
    for (k, &s) in raw.status.iter().flatten().enumerate() {
        if (100..=599).contains(&s) {
            status.push(s as u16);
        } else {
            p.add(
                &format!("status[{k}]"),
                format!("{s} is not an HTTP status (100..=599)"),
            );
        }
    }
    if raw.status.as_ref().is_some_and(|s| s.is_empty()) {
        p.add("status", "needs at least one status code");
    }
    let path = raw.path.clone().unwrap_or_else(|| "/".into());
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        p.add("path", format!("{path:?} is not a request path (/health)"));
    }
    if let Some(h) = &raw.host {
        if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c.is_control()) {
            p.add("host", format!("{h:?} is not a host name"));
        }
    }
    let tls = if https {
        let ca_file = raw.ca_file.as_ref().map(PathBuf::from);
        if let Some(f) = ca_file.as_ref().filter(|f| !f.is_file()) {
            p.add("ca_file", format!("{} is not a readable file", f.display()));
        }
        Some(Tls {
            verify: raw.verify.unwrap_or(false),
            ca_file,
        })
    } else {
        if raw.verify.is_some() || raw.ca_file.is_some() {
            p.add("verify", "applies to https checks only");
        }
        None
    };
    CheckKind::Http {
        tls,
        path,
        host: raw.host.clone(),
        status,
        body: raw.body.clone(),
    }
}

/// Why `program` cannot be run, if it cannot: an absolute or relative path must be an
/// executable file; a bare name must be found on PATH.
fn program_problem(program: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return (!executable(std::path::Path::new(program))).then(|| "is not an executable file".into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|d| executable(&d.join(program)));
    (!found).then(|| "is not found on PATH".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> Result<CheckConfig, Vec<(String, String)>> {
        let raw: RawCheck = toml::from_str(toml_text).unwrap();
        let mut e = Vec::new();
        validate_check(&raw, &mut e).ok_or(e)
    }

    #[test]
    fn durations_read_as_people_write_them() {
        let d = |s: &str| RawDuration::Text(s.into()).parse();
        assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(d("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(d("2"), Some(Duration::from_secs(2)));
        assert_eq!(RawDuration::Secs(3).parse(), Some(Duration::from_secs(3)));
        assert_eq!(d("soon"), None);
        assert_eq!(d("-1s"), None);
        assert_eq!(RawDuration::Secs(-1).parse(), None);
    }

    #[test]
    fn defaults_follow_haproxy() {
        let c = check(r#"type = "tcp""#).unwrap();
        assert_eq!(
            c,
            CheckConfig {
                kind: CheckKind::Tcp,
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
                rise: 2,
                fall: 3,
                alpha: false,
                port: None,
            }
        );
        let h = check("type = \"https\"\npath = \"/health\"\nstatus = [200, 204]\ninterval = \"1s\"\ntimeout = \"300ms\"").unwrap();
        assert_eq!(h.kind.name(), "https");
        assert_eq!(h.timeout, Duration::from_millis(300));
    }

    #[test]
    fn bad_checks_name_each_field() {
        let e = check("type = \"http\"\nstatus = [700]\nrise = 0\ntimeout = \"5s\"\npayload = \"x\"")
            .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"status[0]"), "{e:?}");
        assert!(fields.contains(&"rise"), "{e:?}");
        assert!(fields.contains(&"timeout"), "{e:?}");
        assert!(fields.contains(&"payload"), "{e:?}");
        let e = check(r#"type = "ping""#).unwrap_err();
        assert!(e[0]
            .1
            .contains("\"ping\" is not one of tcp, http, https, udp, exec, agent"));
        let e = check("type = \"exec\"\ncommand = [\"/nonexistent/check\"]").unwrap_err();
        assert_eq!(
            e[0],
            (
                "command".into(),
                "\"/nonexistent/check\" is not an executable file".into()
            )
        );
        let e = check(r#"type = "agent""#).unwrap_err();
        assert_eq!(e[0].0, "port");
        assert!(
            check("type = \"exec\"\ncommand = [\"true\"]").is_ok(),
            "found on PATH"
        );
    }

    #[test]
    fn a_real_servers_fields_lie_over_the_services() {
        let svc: RawCheck = toml::from_str("type = \"http\"\npath = \"/a\"\nfall = 2").unwrap();
        let real: RawCheck = toml::from_str("port = 8081\npath = \"/b\"").unwrap();
        let m = svc.overlaid(&real);
        assert_eq!(m.kind.as_deref(), Some("http"));
        assert_eq!(m.path.as_deref(), Some("/b"));
        assert_eq!((m.port, m.fall), (Some(8081), Some(2)));
    }
}
