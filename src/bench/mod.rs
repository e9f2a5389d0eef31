//! `cm-bench`: load for a broker, measured from outside, over the broker protocol only.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the scenarios' shared parts: options, the report line, percentiles, the table |
//! | `fleet.rs` | many client WebSockets on one mio loop, framed by hand |
//! | `members.rs` | a mesh and members made over HTTP, or read from `--members FILE`; hellos |
//! | `proc.rs` | the broker process from `/proc`: its pid by listening port, its resident memory |
//! | `dm.rs`, `fanout.rs`, `idle.rs`, `cold.rs`, `topic.rs` | one scenario each |
//!
//! Why one thread drives every connection: the client must not be what is measured. A thread per peer would put
//! thousands of threads and their wake-ups on the same two cores as the broker; one loop costs a `read` and a
//! `write` per socket per turn. Everything a scenario sends is sealed before its clock starts.
//!
//! Nothing here judges a figure: it reports, and BENCHMARKS.md says what the figures should be.

mod cold;
mod dm;
mod fanout;
mod fleet;
mod idle;
mod members;
mod proc;
mod topic;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::client::transport::{self, BrokerUrl};
use crate::error::{Error, Result};
use crate::out::Out;
use fleet::{Fleet, Io};
use members::Member;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Direct messages between random pairs of peers.
    Dm,
    /// One broadcast to many peers.
    Fanout,
    /// Many idle connections: the broker's memory per connection.
    Idle,
    /// A `cm-send` process from start to ack.
    Cold,
    /// Posts to an encrypted topic until each peer following it has them.
    Topic,
}

impl Scenario {
    /// Every scenario's name, in the order `--help` lists them.
    pub const NAMES: &[&str] = &["dm", "fanout", "idle", "cold", "topic"];

    /// Parses a scenario name.
    pub fn parse(s: &str) -> Result<Scenario> {
        Ok(match s {
            "dm" => Scenario::Dm,
            "fanout" => Scenario::Fanout,
            "idle" => Scenario::Idle,
            "cold" => Scenario::Cold,
            "topic" => Scenario::Topic,
            _ => {
                return Err(Error::usage(format!(
                    "unknown scenario {s:?}: expected one of {}",
                    Scenario::NAMES.join(", ")
                )));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Scenario::Dm => "dm",
            Scenario::Fanout => "fanout",
            Scenario::Idle => "idle",
            Scenario::Cold => "cold",
            Scenario::Topic => "topic",
        }
    }
}

/// `cm-bench`'s options.
#[derive(Debug, Clone)]
pub struct Options {
    pub scenarios: Vec<Scenario>,
    /// The brokers' URLs (`ws://HOST:PORT/ws` or `http://HOST:PORT`): brokers of one mesh (on one PostgreSQL
    /// database), the connections spread over them in turn.
    pub brokers: Vec<String>,
    /// Peers (dm, fanout, topic) or connections (idle); each scenario has its own default.
    pub peers: Option<usize>,
    /// Messages per peer (dm), broadcasts (fanout), posts (topic) or runs (cold).
    pub messages: Option<usize>,
    /// Plaintext bytes per message.
    pub size: usize,
    /// dm, topic: total sends per second, paced; `None` sends as fast as the window allows.
    pub rate: Option<f64>,
    /// dm, topic: sends a peer may have waiting for their `ack`.
    pub window: usize,
    /// Members of an existing mesh to speak as, instead of making a mesh.
    pub members: Option<PathBuf>,
    /// The brokers' process ids, for their CPU and memory; found by their listening ports when local.
    pub broker_pids: Vec<u32>,
    /// The `cm-send` binary the cold scenario runs.
    pub cm_send: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            scenarios: Vec::new(),
            brokers: Vec::new(),
            peers: None,
            messages: None,
            size: 256,
            rate: None,
            window: 1,
            members: None,
            broker_pids: Vec::new(),
            cm_send: None,
        }
    }
}

/// One scenario's figures: one JSON line, or one row of the table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    /// Peers (dm, fanout), following peers (topic), connections (idle) or 2 (cold).
    pub peers: usize,
    /// Messages sent (dm), broadcasts (fanout), posts (topic), hellos (idle), `cm-send` runs (cold).
    pub sent: u64,
    /// Pushes received (dm, fanout; topic: over all peers, and only those the peer's key opens), `hello_ack`s
    /// (idle), runs that ended in an ack (cold).
    pub delivered: u64,
    /// From the first send to the last delivery.
    pub elapsed_s: f64,
    /// `delivered` per second of `elapsed_s`.
    pub throughput_msgs_per_s: f64,
    /// Latency percentiles: send → push (dm), broadcast → last peer (fanout), post → each peer's push (topic),
    /// hello → `hello_ack` (idle), process start → exit after the ack (cold).
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The brokers' resident memory at the end, summed, when the bench can read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_rss_mb: Option<f64>,
    /// What only this scenario reports.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Report {
    fn new(scenario: Scenario, peers: usize) -> Report {
        Report {
            scenario: scenario.name(),
            peers,
            ..Report::default()
        }
    }

    /// Sets the percentiles from latencies in any order.
    fn latencies(&mut self, mut ms: Vec<f64>) {
        ms.sort_by(f64::total_cmp);
        let at = |p: f64| {
            if ms.is_empty() {
                return 0.0;
            }
            let rank = (p * ms.len() as f64).ceil() as usize;
            round(ms[rank.clamp(1, ms.len()) - 1])
        };
        (self.p50_ms, self.p90_ms, self.p99_ms) = (at(0.50), at(0.90), at(0.99));
        self.max_ms = round(ms.last().copied().unwrap_or(0.0));
    }

    fn elapsed(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        self.elapsed_s = round(s);
        self.throughput_msgs_per_s = if s > 0.0 {
            round(self.delivered as f64 / s)
        } else {
            0.0
        };
    }

    fn set(&mut self, key: &str, v: impl Into<Value>) {
        self.extra.insert(key.to_string(), v.into());
    }

    /// What a run of sends adds (dm, topic): its pacing, the body size, the median time to the `ack`, and the
    /// refusals.
    fn sends(
        &mut self,
        paced: Option<f64>,
        window: usize,
        size: usize,
        mut acks: Vec<f64>,
        refusals: (usize, Option<&str>),
    ) {
        match paced {
            Some(rate) => self.set("rate", rate),
            None => self.set("window", window),
        }
        self.set("size", size);
        acks.sort_by(f64::total_cmp);
        if let Some(a) = acks.get(acks.len() / 2) {
            self.set("ack_p50_ms", round(*a));
        }
        self.set("refused", refusals.0);
        if let Some(first) = refusals.1 {
            self.set("first_refusal", first);
        }
    }

    /// The table's header, matching [`Report::row`].
    fn header() -> String {
        format!(
            "{:<8} {:>6} {:>8} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}  {}",
            "scenario",
            "peers",
            "sent",
            "delivered",
            "msgs/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "rss MB",
            "notes"
        )
    }

    fn row(&self) -> String {
        let rss = self
            .broker_rss_mb
            .map_or_else(|| "-".to_string(), |r| format!("{r:.1}"));
        let notes: Vec<String> = self
            .extra
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                v => format!("{k}={v}"),
            })
            .collect();
        format!(
            "{:<8} {:>6} {:>8} {:>10} {:>10.0} {:>8.3} {:>8.3} {:>8.3} {:>8}  {}",
            self.scenario,
            self.peers,
            self.sent,
            self.delivered,
            self.throughput_msgs_per_s,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            rss,
            notes.join(" ")
        )
    }
}

/// Three decimals: microseconds in a figure of milliseconds.
/// For `--rate`: sends `sent..total` that are due by `now` go out (`send(n, due)`), each counted from when it was
/// due; returns how long until the next one is due.
fn send_due(
    start: Instant,
    rate: f64,
    now: Instant,
    sent: usize,
    total: usize,
    mut send: impl FnMut(usize, Instant),
) -> Option<Duration> {
    for n in sent..total {
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        if due > now {
            return Some(due - now);
        }
        send(n, due);
    }
    None
}

/// What the send-and-deliver scenarios (dm, topic) count alike.
struct Tally {
    window: usize,
    sent: usize,
    acked: usize,
    refused: usize,
    first_refusal: Option<String>,
    /// Sends (by index) the broker's rate limit holds back.
    held: Held<usize>,
    delivered: usize,
    latencies: Vec<f64>,
    ack_latencies: Vec<f64>,
    last_push: Option<Instant>,
    progress: Instant,
}

impl Tally {
    /// For `deliveries` pushes expected of `sends` sends, up to `window` unanswered at a time.
    fn new(window: usize, start: Instant, deliveries: usize, sends: usize) -> Tally {
        Tally {
            window: window.max(1),
            sent: 0,
            acked: 0,
            refused: 0,
            first_refusal: None,
            held: Held::new(),
            delivered: 0,
            latencies: Vec::with_capacity(deliveries),
            ack_latencies: Vec::with_capacity(sends),
            last_push: None,
            progress: start,
        }
    }
}

/// A send-and-deliver scenario, run by [`drive`].
trait Load {
    fn tally(&mut self) -> &mut Tally;
    fn done(&self) -> bool;
    /// Sends the run's `n`th message, due at `due` (a paced run).
    fn send_paced(&mut self, io: &mut Io, n: usize, due: Instant);
    /// Sends again what the rate limit held and is now due.
    fn resend_due(&mut self, io: &mut Io, now: Instant);
    fn on_text(&mut self, io: &mut Io, i: usize, text: &str, paced: bool);
}

/// How [`drive`] runs a scenario.
struct Plan {
    scenario: Scenario,
    peers: usize,
    /// Sends in the run.
    total: usize,
    /// Sends a second, or as fast as the window allows.
    paced: Option<f64>,
    size: usize,
    start: Instant,
}

/// Runs `st` until it is done or makes no progress for [`dm::STALL`]: sends on time when paced, sends again what
/// the rate limit held, and reads what comes; then closes the fleet and reports what every such scenario reports.
fn drive(fleet: &mut Fleet, st: &mut impl Load, plan: &Plan, meter: &Meter) -> Result<Report> {
    let start = plan.start;
    while !st.done() && st.tally().progress.elapsed() < dm::STALL {
        let mut timeout = Some(Duration::from_millis(100));
        if let Some(rate) = plan.paced {
            let now = Instant::now();
            let sent = st.tally().sent;
            let wait = send_due(start, rate, now, sent, plan.total, |n, due| {
                st.send_paced(&mut fleet.io, n, due);
                st.tally().progress = now;
            });
            timeout = wait.or(timeout);
        }
        let now = Instant::now();
        st.resend_due(&mut fleet.io, now);
        fleet.flush();
        timeout = st.tally().held.timeout(now, timeout);
        let paced = plan.paced.is_some();
        fleet.turn(timeout, &mut |io, i, t| st.on_text(io, i, t, paced))?;
    }
    let t = st.tally();
    let end = t.last_push.unwrap_or_else(Instant::now);
    let mut r = Report::new(plan.scenario, plan.peers);
    r.sent = t.sent as u64;
    r.delivered = t.delivered as u64;
    meter.finish(&mut r);
    fleet.close_all(Duration::from_secs(2));
    r.elapsed(end.saturating_duration_since(start));
    r.latencies(std::mem::take(&mut t.latencies));
    r.sends(
        plan.paced,
        t.window,
        plan.size,
        std::mem::take(&mut t.ack_latencies),
        (t.refused, t.first_refusal.as_deref()),
    );
    t.held.report(&mut r);
    Ok(r)
}

/// Sends the broker refused with `rate_limit`, each due again when the broker said, as a real client waits; and
/// how much the run was paced so.
struct Held<T> {
    due: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, T)>>,
    /// Refusals waited out.
    count: u64,
    /// The waits, summed over every held send.
    waited: Duration,
}

impl<T: Ord> Held<T> {
    fn new() -> Held<T> {
        Held {
            due: std::collections::BinaryHeap::new(),
            count: 0,
            waited: Duration::ZERO,
        }
    }

    /// Holds `what` when the refusal `error` is a rate limit; false for a refusal that is final.
    fn hold(&mut self, error: &str, retry_after_ms: Option<u64>, now: Instant, what: T) -> bool {
        let Some(d) = crate::client::pace::wait_for(error, retry_after_ms) else {
            return false;
        };
        self.count += 1;
        self.waited += d;
        self.due.push(std::cmp::Reverse((now + d, what)));
        true
    }

    /// `timeout`, or less when a held send is due sooner.
    fn timeout(&self, now: Instant, timeout: Option<Duration>) -> Option<Duration> {
        let Some(next) = self
            .due
            .peek()
            .map(|r| r.0.0.saturating_duration_since(now))
        else {
            return timeout;
        };
        Some(timeout.map_or(next, |t| t.min(next)))
    }

    /// Takes the held sends that are due.
    fn take_due(&mut self, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        while self.due.peek().is_some_and(|r| r.0.0 <= now) {
            if let Some(std::cmp::Reverse((_, t))) = self.due.pop() {
                out.push(t);
            }
        }
        out
    }

    /// `paced` (refusals waited out) and `paced_ms` (their waits, summed).
    fn report(&self, r: &mut Report) {
        r.set("paced", self.count);
        r.set("paced_ms", round(ms(self.waited)));
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU used by the broker and by the bench over a scenario's measured part: the broker's per message is the
/// figure a busy machine does not blur (a starved broker takes longer, not more CPU), and the bench's shows it
/// was not the bottleneck.
struct Meter {
    pids: Vec<u32>,
    broker: Option<u64>,
    client: u64,
}

impl Meter {
    /// Reports the CPU used since the meter started: `broker_cpu_s`, `broker_us_per_msg` (per delivered
    /// message) and `client_cpu_s`.
    fn finish(&self, r: &mut Report) {
        let secs = |ns: u64| round(ns as f64 / 1e9);
        if let Some(before) = self.broker
            && let Some(now) = cpu_ns(&self.pids)
        {
            let used = now.saturating_sub(before);
            r.set("broker_cpu_s", secs(used));
            if r.delivered > 0 {
                r.set(
                    "broker_us_per_msg",
                    round(used as f64 / 1e3 / r.delivered as f64),
                );
            }
        }
        r.set(
            "client_cpu_s",
            secs(proc::own_cpu_ns().saturating_sub(self.client)),
        );
    }
}

/// The CPU the processes `pids` have used, summed; `None` when there are none or one cannot be read.
fn cpu_ns(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| proc::cpu_ns(p)).sum()
}

/// What every scenario shares: the brokers, the members to speak as, where the brokers' CPU and memory are read.
struct Ctx<'a> {
    opts: &'a Options,
    /// The first broker: where meshes are made and `cold`'s `cm-send` connects.
    url: BrokerUrl,
    /// Every broker, the first included: the fleet's connections go to each in turn.
    urls: Vec<BrokerUrl>,
    members: Option<Vec<Member>>,
    /// The brokers' process ids, when every one is known.
    pids: Vec<u32>,
}

impl Ctx<'_> {
    fn rss_kib(&self) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|&p| proc::rss_kib(p)).sum()
    }

    /// Starts measuring CPU.
    fn meter(&self) -> Meter {
        Meter {
            pids: self.pids.clone(),
            broker: cpu_ns(&self.pids),
            client: proc::own_cpu_ns(),
        }
    }

    fn rss_mb(&self) -> Option<f64> {
        self.rss_kib().map(|k| round(k as f64 / 1024.0))
    }

    /// `n` members: the first `n` of `--members`, else a new mesh of `n` (`tag` names it).
    fn members(&self, tag: &str, n: usize) -> Result<Vec<Member>> {
        members::get(&self.url, self.members.as_deref(), tag, n)
    }
}

/// Runs each scenario in turn and writes its figures as it finishes.
pub fn run(opts: &Options, out: &mut Out) -> Result<()> {
    let urls = opts
        .brokers
        .iter()
        .map(|b| transport::parse_url(b))
        .collect::<Result<Vec<_>>>()?;
    let Some(url) = urls.first().cloned() else {
        return Err(Error::usage("missing --broker URL; see 'cm-bench --help'"));
    };
    if urls.iter().any(|u| u.tls) {
        return Err(Error::usage(
            "cm-bench speaks ws:// only; measure a TLS broker through its plain port",
        ));
    }
    if !opts.broker_pids.is_empty() && opts.broker_pids.len() != urls.len() {
        return Err(Error::usage(format!(
            "--broker-pid: {} given for {} brokers; give one per --broker, in the same order",
            opts.broker_pids.len(),
            urls.len()
        )));
    }
    if opts.scenarios.is_empty() {
        return Err(Error::usage(format!(
            "no SCENARIO given: one or more of {}",
            Scenario::NAMES.join(", ")
        )));
    }
    proc::raise_fd_limit();
    let members = opts
        .members
        .as_ref()
        .map(|p| members::read(&p.display().to_string()))
        .transpose()?;
    let local = |u: &BrokerUrl| {
        u.host == "localhost"
            || u.host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    // Every broker's or none: a figure summed over some of them would pass for all of them.
    let pids = if opts.broker_pids.is_empty() {
        urls.iter()
            .map(|u| local(u).then(|| proc::listener_pid(u.port)).flatten())
            .collect::<Option<Vec<u32>>>()
            .unwrap_or_default()
    } else {
        opts.broker_pids.clone()
    };
    let ctx = Ctx {
        opts,
        url,
        urls,
        members,
        pids,
    };
    // The header goes out with the first row, so a scenario that fails first leaves only its error.
    let mut headed = out.json;
    for &s in &opts.scenarios {
        let mut r = match s {
            Scenario::Dm => dm::run(&ctx)?,
            Scenario::Fanout => fanout::run(&ctx)?,
            Scenario::Idle => idle::run(&ctx)?,
            Scenario::Cold => cold::run(&ctx)?,
            Scenario::Topic => topic::run(&ctx)?,
        };
        if r.broker_rss_mb.is_none() {
            r.broker_rss_mb = ctx.rss_mb();
        }
        if ctx.urls.len() > 1 {
            r.set("brokers", ctx.urls.len());
        }
        if out.json {
            out.json(&r)?;
        } else {
            if !std::mem::replace(&mut headed, true) {
                out.line(Report::header())?;
            }
            out.line(r.row())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_sends_go_out_when_due_and_say_when_the_next_is() {
        let start = Instant::now();
        let mut out = Vec::new();
        // 100 per second: at 25 ms, sends 0, 1 and 2 are due (0, 10, 20 ms); 3 is 5 ms away.
        let wait = send_due(
            start,
            100.0,
            start + Duration::from_millis(25),
            0,
            10,
            |n, due| out.push((n, due - start)),
        );
        assert_eq!(
            out,
            [0, 10, 20].map(|m| (m / 10, Duration::from_millis(m as u64)))
        );
        assert_eq!(wait, Some(Duration::from_millis(5)));
        let all = send_due(
            start,
            100.0,
            start + Duration::from_secs(1),
            8,
            10,
            |_, _| {},
        );
        assert_eq!(all, None, "nothing left to wait for");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut r = Report::new(Scenario::Dm, 1);
        r.latencies((1..=100).rev().map(f64::from).collect());
        assert_eq!(
            (r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        r.latencies(vec![0.0004]);
        assert_eq!((r.p50_ms, r.max_ms), (0.0, 0.0));
        r.latencies(Vec::new());
        assert_eq!(r.p99_ms, 0.0);
    }

    #[test]
    fn report_lines_carry_the_common_fields() {
        let mut r = Report::new(Scenario::Idle, 3);
        r.sent = 3;
        r.delivered = 3;
        r.elapsed(Duration::from_millis(1500));
        r.set("per_conn_kib", 5.5);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["scenario"], "idle");
        assert_eq!(v["throughput_msgs_per_s"], 2.0);
        assert_eq!(v["per_conn_kib"], 5.5);
        assert!(v.get("broker_rss_mb").is_none());
        assert!(r.row().contains("per_conn_kib=5.5"));
    }
}
