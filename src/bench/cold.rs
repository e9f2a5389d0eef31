//! `cold`: the real `cm-send` binary, run M times against a config directory made for it, timed from spawn to
//! exit. It exits once the broker's `ack` is in and its socket is closed, so that is "start to ack" as a user
//! waits for it. The recipient is online (the bench holds its connection and acknowledges its pushes), so every
//! run ends in `sent`. One warm-up run is not counted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::fleet::Fleet;
use super::members::{self, Incoming, Member};
use super::{Ctx, Report, Scenario, ms};
use crate::config::{Config, MeshEntry, Paths};
use crate::error::{Error, Result};

/// The config directory `cm-send` runs with, removed when dropped.
struct ConfigDir(PathBuf);

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config_dir(sender: &Member, broker_ws: &str) -> Result<ConfigDir> {
    let dir = std::env::temp_dir().join(format!(
        "cm-bench-{}-{}",
        std::process::id(),
        crate::crypto::hex::encode(&crate::crypto::random_bytes::<4>())
    ));
    let guard = ConfigDir(dir);
    let paths = Paths::at(&guard.0)?;
    let mut config = Config::default();
    config.upsert_mesh(MeshEntry {
        mesh_id: sender.mesh_id.clone(),
        member_id: sender.member_id.clone(),
        slug: "bench".into(),
        name: "bench".into(),
        pubkey: sender.pubkey(),
        secret_key: sender.key.secret_hex(),
        broker_url: broker_ws.to_string(),
        broker_urls: Vec::new(),
        joined_at: crate::time::fmt_rfc3339(crate::time::now_ms()),
        root_key: None,
        invite_version: Some(1),
        extra: Default::default(),
    });
    config.save(&paths)?;
    Ok(guard)
}

/// How to run cm-send: `--cm-send PATH`, else its link beside `cm`, else `cm send`.
fn cm_send(flag: Option<&Path>) -> Result<(PathBuf, Vec<String>)> {
    let (path, args) = match flag {
        Some(p) => (p.to_path_buf(), Vec::new()),
        None => {
            let c = crate::multicall::command("cm-send");
            (PathBuf::from(c.program), c.args)
        }
    };
    if !path.is_file() {
        return Err(Error::usage(format!(
            "no cm-send at {} (give its path with --cm-send)",
            path.display()
        )));
    }
    Ok((path, args))
}

pub(super) fn run(ctx: &Ctx) -> Result<Report> {
    let runs = ctx.opts.messages.unwrap_or(50);
    let (bin, verb) = cm_send(ctx.opts.cm_send.as_deref())?;
    let members = ctx.members("cold", 2)?;
    let mut fleet = Fleet::new()?;
    members::connect(&mut fleet, &ctx.urls, &members[1..], 1)?;
    let dir = config_dir(&members[0], &ctx.url.ws)?;
    let target = members[1].pubkey();

    let mut times = Vec::with_capacity(runs);
    let mut failure = None;
    let meter = ctx.meter();
    let total = Instant::now();
    for n in 0..=runs {
        let start = Instant::now();
        let out = Command::new(&bin)
            .args(&verb)
            .args(["--json", &target, &format!("cold start {n}")])
            .env("CLAUDEMESH_CONFIG_DIR", &dir.0)
            .env_remove("CLAUDEMESH_MESH")
            .env_remove("CLAUDEMESH_SESSION_ID")
            .env_remove("CLAUDEMESH_DISPLAY_NAME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Error::from(e).context(format_args!("running {}", bin.display())))?;
        let took = start.elapsed();
        if out.status.success() {
            if n > 0 {
                times.push(ms(took));
            }
        } else {
            failure.get_or_insert_with(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        // Take the push off the recipient's socket and acknowledge it, as its owner would.
        fleet.turn(Some(Duration::ZERO), &mut |io, i, text| {
            if let Some(f) = Incoming::parse(text)
                && f.ty == "push"
                && let Some(id) = f.message_id.as_deref()
            {
                io.send(i, members::client_ack(id).as_bytes());
            }
        })?;
    }
    let elapsed = total.elapsed();
    if times.is_empty()
        && let Some(why) = failure.as_ref()
    {
        return Err(Error::generic(format!("cold: cm-send failed: {why}")));
    }
    let mut r = Report::new(Scenario::Cold, 2);
    r.sent = runs as u64;
    r.delivered = times.len() as u64;
    meter.finish(&mut r);
    fleet.close_all(Duration::from_secs(1));
    r.elapsed(elapsed);
    r.latencies(times);
    r.set("binary", bin.display().to_string());
    if let Ok(m) = std::fs::metadata(&bin) {
        r.set("binary_bytes", m.len());
    }
    if let Some(f) = failure {
        r.set("first_failure", f);
    }
    Ok(r)
}
