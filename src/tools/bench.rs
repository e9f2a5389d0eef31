//! `cm-bench`: load a broker and measure it.

use std::path::PathBuf;

use crate::bench::{self, Options, Scenario};
use crate::cli::{Args, Complete, Example, Flag, Tool, flag, pos};
use crate::error::{Error, Result};
use crate::out::Out;

const BROKER: Flag = flag(
    "broker",
    "the broker to measure: ws://HOST:PORT/ws; again for brokers of one database, connections spread over them",
)
.value("URL")
.repeat();
const PEERS: Flag = flag(
    "peers",
    "peers (dm, fanout, topic) or connections (idle); defaults 100, 1000, 100, 10000",
)
.short('n')
.value("N");
const MESSAGES: Flag = flag(
            "messages",
            "messages per peer (dm), broadcasts (fanout), posts (topic) or runs (cold); defaults 1000, 20, 1000, \
50",
        )
        .short('m')
        .value("M");
const SIZE: Flag = flag("size", "plaintext bytes per message, default 256").value("BYTES");
const WINDOW: Flag = flag(
    "window",
    "dm, topic: sends a peer keeps waiting for their ack, default 1",
)
.value("W");
const RATE: Flag = flag(
    "rate",
    "dm, topic: send this many messages per second in all, on a schedule",
)
.value("PER_SEC");
const MEMBERS: Flag = flag(
    "members",
    "members of an existing mesh to speak as: JSON lines of meshId, memberId, pubkey, secretKey",
)
.value("FILE")
.complete(Complete::File);
const BROKER_PID: Flag = flag(
    "broker-pid",
    "the broker's process id, for its CPU and memory (found by port when local); one per --broker",
)
.value("PID")
.repeat();
const CM_SEND: Flag = flag(
    "cm-send",
    "the cm-send binary cold runs, default the one next to cm-bench",
)
.value("PATH")
.complete(Complete::File);

/// `cm-bench`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-bench",
    about: "load a broker and measure its latency, throughput and memory",
    description: "cm-bench speaks the broker protocol to the broker at --broker (cm-broker, or another broker of \
the same protocol) and measures it from outside. On a broker that lets it create meshes (cm-broker on loopback) it \
makes a mesh and members of its own for each scenario; elsewhere give it members of an existing mesh with \
--members FILE, JSON lines of {\"meshId\", \"memberId\", \"pubkey\", \"secretKey\"}.

Scenarios, run in the order given:

dm: --peers peers (default 100) each send --messages crypto_box DMs (default 1000) to random other peers. Every \
message is stored by the broker and acknowledged by its recipient with client_ack. Latency is from the send to the \
recipient's push. A peer keeps --window sends waiting for their ack (default 1); with --rate the sends go out on a \
schedule instead and latency counts from when each was due.

fanout: one peer broadcasts to --peers others (default 1000), sealed per recipient; latency is the time until the \
last peer has it. --messages broadcasts (default 20), one after another.

idle: --peers connections (default 10000) say hello and stay idle; the broker's resident memory is read before and \
after, and per_conn_kib is the difference per connection.

cold: runs the cm-send binary --messages times (default 50) against a config directory made for it and times each \
run from start to exit, which follows the broker's ack.

topic: one peer creates an encrypted topic as cm-topic create does (a fresh topic key sealed for every member) and \
--peers others (default 100) join it and open their copy of the key as cm-topic tail does; then the first peer \
posts --messages posts (default 1000), sealed under the topic key and paced as dm's sends are (--window, --rate). \
Latency is from a post's send to each peer's push, over every (post, peer) pair; delivered counts the pushes the \
peers received and could open with their key, and last_delivery_p50_ms is the median time until a post's last peer \
has it.

Give --broker more than once for brokers of one mesh on one PostgreSQL database: each scenario's connections go \
to them in turn (meshes are made on the first, and cold's cm-send connects to it), so a dm between peers on \
different brokers crosses the database; CPU and memory are summed over the brokers and each line reports brokers.

The broker must let the load through: start cm-broker with --rate-limit 0 and --max-conns-per-mesh and \
--max-conns-per-addr above the connection count. Against a rate limit, a refused send waits as long as the broker \
says and goes again, as every tool does; dm, fanout and topic then report paced (how many refusals were waited \
out) and paced_ms (their waits, summed), and refused counts the final refusals. Its memory is read from /proc when it runs on this machine (found \
by its listening port, or given with --broker-pid).

Output is a table, or with --json one line per scenario: {\"scenario\", \"peers\", \"sent\", \"delivered\", \
\"elapsed_s\", \"throughput_msgs_per_s\", \"p50_ms\", \"p90_ms\", \"p99_ms\", \"max_ms\", \"broker_rss_mb\", ...} \
with what only that scenario reports. cm-bench reports figures and judges none.",
    section: 1,
    args: &[pos("SCENARIO")
        .many()
        .complete(Complete::Values(Scenario::NAMES))],
    flags: &[BROKER, PEERS, MESSAGES, SIZE, WINDOW, RATE, MEMBERS, BROKER_PID, CM_SEND],
    subs: &[],
    mesh_flag: false,
    config_dir: false,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-broker --listen 127.0.0.1:7901 --data /tmp/cmb --rate-limit 0 --max-conns-per-mesh 20000 \
--max-conns-per-addr 20000 &",
            what: "A broker that lets the load through.",
        },
        Example {
            cmd: "cm-bench dm fanout idle cold topic --broker ws://127.0.0.1:7901/ws",
            what: "Every scenario with its defaults, as a table.",
        },
        Example {
            cmd: "cm-bench dm --broker ws://127.0.0.1:7901/ws --broker ws://127.0.0.1:7902/ws",
            what: "DMs between peers spread over two brokers on one PostgreSQL database.",
        },
        Example {
            cmd: "cm-bench dm --broker ws://127.0.0.1:7901/ws --rate 20000 --json | jq .p99_ms",
            what: "DM latency at 20 000 messages a second.",
        },
    ],
    env: &[],
};

fn number<T: std::str::FromStr>(args: &Args, flag: &Flag) -> Result<Option<T>> {
    args.value(flag)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| Error::usage(format!("--{}: expected a number, got {v:?}", flag.long)))
        })
        .transpose()
}

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let defaults = Options::default();
    let opts = Options {
        scenarios: args
            .positionals
            .iter()
            .map(|s| Scenario::parse(s))
            .collect::<Result<_>>()?,
        brokers: args.values(&BROKER).into_iter().map(String::from).collect(),
        peers: number(args, &PEERS)?,
        messages: number(args, &MESSAGES)?,
        size: number(args, &SIZE)?.unwrap_or(defaults.size),
        rate: number::<f64>(args, &RATE)?.filter(|r| r.is_finite() && *r > 0.0),
        window: number(args, &WINDOW)?.unwrap_or(defaults.window),
        members: args.value(&MEMBERS).map(PathBuf::from),
        broker_pids: args
            .values(&BROKER_PID)
            .into_iter()
            .map(|v| {
                v.parse().map_err(|_| {
                    Error::usage(format!("--broker-pid: expected a number, got {v:?}"))
                })
            })
            .collect::<Result<_>>()?,
        cm_send: args.value(&CM_SEND).map(PathBuf::from),
    };
    bench::run(&opts, out)
}
