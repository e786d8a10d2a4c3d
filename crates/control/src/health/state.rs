//! What a checker's results mean: one real server's up/down state with `rise` and `fall`, the
//! weight its checker asks for (an exec checker's exit code, an agent's percentage or drain),
//! and a service's quorum with hysteresis. Pure: results and time come in, states go out.

use std::time::Instant;

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Up { detail: String, weight: WeightHint },
    Down { reason: String },
}

/// What a successful probe says about the weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightHint {
    /// Nothing: the configured weight.
    Keep,
    /// keepalived's misc_dynamic: this weight.
    Absolute(u32),
    /// HAProxy's agent: a percentage of the configured weight (`pct`), drained (`drain`),
    /// or back from a drain (`ready`); each None when the agent did not say.
    Agent { pct: Option<u32>, drain: Option<bool> },
}

impl Outcome {
    pub fn text(&self) -> &str {
        match self {
            Outcome::Up { detail, .. } => detail,
            Outcome::Down { reason } => reason,
        }
    }
}

/// One real server's health.
#[derive(Debug, Clone)]
pub struct RealHealth {
    pub up: bool,
    pub successes: u32,
    pub failures: u32,
    pub transitions: u64,
    pub last: Option<(Instant, String)>,
    /// Set by an exec checker's exit code 2..=255.
    pub dynamic: Option<u32>,
    pub agent_pct: u32,
    pub agent_drained: bool,
    /// No result yet: with `alpha`, the first success brings the server up.
    fresh: bool,
}

impl RealHealth {
    /// A server before its first probe: up, unless `alpha` (keepalived's: down until proven).
    pub fn new(alpha: bool) -> RealHealth {
        RealHealth {
            up: !alpha,
            successes: 0,
            failures: 0,
            transitions: 0,
            last: None,
            dynamic: None,
            agent_pct: 100,
            agent_drained: false,
            fresh: true,
        }
    }

    /// Records a result; returns true if the server went up or down.
    pub fn record(&mut self, o: &Outcome, rise: u32, fall: u32, now: Instant) -> bool {
        let was = self.up;
        match o {
            Outcome::Up { weight, .. } => {
                self.successes = self.successes.saturating_add(1);
                self.failures = 0;
                match *weight {
                    WeightHint::Keep => self.dynamic = None,
                    WeightHint::Absolute(w) => self.dynamic = Some(w),
                    WeightHint::Agent { pct, drain } => {
                        if let Some(p) = pct {
                            self.agent_pct = p;
                        }
                        if let Some(d) = drain {
                            self.agent_drained = d;
                        }
                    }
                }
                if !self.up && (self.successes >= rise || self.fresh) {
                    self.up = true;
                }
            }
            Outcome::Down { .. } => {
                self.failures = self.failures.saturating_add(1);
                self.successes = 0;
                if self.up && self.failures >= fall {
                    self.up = false;
                }
            }
        }
        self.fresh = false;
        self.last = Some((now, o.text().to_string()));
        if self.up != was {
            self.transitions += 1;
        }
        self.up != was
    }

    /// The weight the scheduler should use for a server configured with `configured`.
    pub fn weight(&self, configured: u32) -> u32 {
        if !self.up || self.agent_drained {
            return 0;
        }
        if let Some(w) = self.dynamic {
            return w;
        }
        ((configured as u64 * self.agent_pct as u64 + 50) / 100) as u32
    }
}

/// Reads an agent's reply (HAProxy's agent-check): words separated by spaces, commas or tabs,
/// a `#` starting a comment. `75%` scales the weight, `drain` sets it to 0 while the server stays
/// up, `up`/`ready` bring it back, `down`/`fail`/`stopped`/`maint` take it down.
pub fn agent_outcome(line: &str) -> Outcome {
    let line = line.split('#').next().unwrap_or("");
    let (mut pct, mut drain, mut down) = (None, None, None);
    for w in line.split([' ', ',', '\t', '\r', '\n']).filter(|w| !w.is_empty()) {
        let lw = w.to_ascii_lowercase();
        match lw.as_str() {
            "up" | "ready" => drain = Some(false),
            "drain" => drain = Some(true),
            "down" | "fail" | "stopped" | "maint" => down = Some(lw.clone()),
            _ => {
                if let Some(n) = lw.strip_suffix('%').and_then(|n| n.parse::<u32>().ok()) {
                    pct = Some(n.min(256));
                }
            }
        }
    }
    if let Some(word) = down {
        return Outcome::Down {
            reason: format!("agent says {word}"),
        };
    }
    if pct.is_none() && drain.is_none() {
        return Outcome::Down {
            reason: format!("agent reply not understood: {:?}", line.trim()),
        };
    }
    Outcome::Up {
        detail: format!("agent says {}", line.trim()),
        weight: WeightHint::Agent { pct, drain },
    }
}

/// A service's quorum (keepalived): lost when the live weight falls below
/// `quorum - hysteresis`, regained when it reaches `quorum + hysteresis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    pub quorum: u32,
    pub hysteresis: u32,
    pub up: bool,
}

impl Quorum {
    pub fn new(quorum: u32, hysteresis: u32) -> Quorum {
        Quorum {
            quorum,
            hysteresis,
            up: true,
        }
    }

    /// Updates with the live weight; returns true if the quorum was lost or regained.
    pub fn update(&mut self, live: u64) -> bool {
        if self.quorum == 0 {
            return false;
        }
        let was = self.up;
        if self.up && live < self.quorum.saturating_sub(self.hysteresis) as u64 {
            self.up = false;
        } else if !self.up && live >= (self.quorum + self.hysteresis) as u64 {
            self.up = true;
        }
        self.up != was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up() -> Outcome {
        Outcome::Up {
            detail: "ok".into(),
            weight: WeightHint::Keep,
        }
    }

    fn down() -> Outcome {
        Outcome::Down {
            reason: "connect refused".into(),
        }
    }

    #[test]
    fn fall_failures_take_a_server_out_and_rise_successes_bring_it_back() {
        let now = Instant::now();
        let mut h = RealHealth::new(false);
        assert!(h.up);
        assert!(!h.record(&down(), 2, 3, now));
        assert!(!h.record(&down(), 2, 3, now));
        assert!(!h.record(&up(), 2, 3, now), "a success resets the failures");
        assert!(!h.record(&down(), 2, 3, now));
        assert!(!h.record(&down(), 2, 3, now));
        assert!(h.record(&down(), 2, 3, now), "the third failure in a row");
        assert!(!h.up);
        assert_eq!(h.weight(5), 0);
        assert!(!h.record(&up(), 2, 3, now));
        assert!(h.record(&up(), 2, 3, now), "the second success in a row");
        assert_eq!((h.weight(5), h.transitions), (5, 2));
        assert_eq!(h.last.as_ref().unwrap().1, "ok");
    }

    #[test]
    fn alpha_starts_down_until_the_first_success() {
        let now = Instant::now();
        let mut h = RealHealth::new(true);
        assert!(!h.up);
        assert_eq!(h.weight(3), 0);
        assert!(h.record(&up(), 5, 3, now), "one success is enough the first time");
        let mut h = RealHealth::new(true);
        assert!(!h.record(&down(), 5, 3, now));
        assert!(!h.record(&up(), 5, 3, now), "after a failure, rise applies");
    }

    #[test]
    fn exec_and_agent_weights() {
        let now = Instant::now();
        let mut h = RealHealth::new(false);
        h.record(
            &Outcome::Up {
                detail: "exec exit 7".into(),
                weight: WeightHint::Absolute(5),
            },
            1,
            1,
            now,
        );
        assert_eq!(h.weight(100), 5);
        h.record(&up(), 1, 1, now);
        assert_eq!(h.weight(100), 100, "exit 0 gives the configured weight back");
        let mut a = RealHealth::new(false);
        a.record(&agent_outcome("50%\n"), 1, 1, now);
        assert_eq!(a.weight(10), 5);
        a.record(&agent_outcome("drain"), 1, 1, now);
        assert!(a.up, "a drained server stays up");
        assert_eq!(a.weight(10), 0);
        a.record(&agent_outcome("up"), 1, 1, now);
        assert_eq!(a.weight(10), 5, "back from the drain, at its last percentage");
        a.record(&agent_outcome("ready 100%"), 1, 1, now);
        assert_eq!(a.weight(10), 10);
        assert!(a.record(&agent_outcome("maint # upgrading"), 1, 1, now));
        assert!(!a.up);
    }

    #[test]
    fn agent_replies_parse_as_haproxy_reads_them() {
        assert!(matches!(
            agent_outcome("75%, up\r\n"),
            Outcome::Up {
                weight: WeightHint::Agent {
                    pct: Some(75),
                    drain: Some(false)
                },
                ..
            }
        ));
        assert_eq!(agent_outcome("stopped").text(), "agent says stopped");
        assert!(matches!(agent_outcome("hello"), Outcome::Down { .. }));
        assert!(matches!(agent_outcome(""), Outcome::Down { .. }));
        assert!(matches!(agent_outcome("# only a comment"), Outcome::Down { .. }));
    }

    #[test]
    fn quorum_with_hysteresis() {
        let mut q = Quorum::new(3, 1);
        assert!(!q.update(3));
        assert!(!q.update(2), "2 is not below 3 - 1");
        assert!(q.update(1), "lost below quorum - hysteresis");
        assert!(!q.up);
        assert!(!q.update(3), "3 is not quorum + hysteresis");
        assert!(q.update(4));
        assert!(q.up);
        let mut none = Quorum::new(0, 0);
        assert!(!none.update(0), "no quorum configured");
    }
}
