//! Several brokers on this database: their heartbeats, the presences each serves, and `NOTIFY`/`LISTEN` between
//! them. Why `NOTIFY` in the batch's transaction: PostgreSQL sends it only at the commit, in commit order, and
//! never for a rolled-back batch, so a broker that hears of a delivery can read it from the store already.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use postgres::Row;
use postgres::fallible_iterator::FallibleIterator;

use super::{At, PgStore, connect};
use crate::broker::log;
use crate::broker::net::Wake;
use crate::broker::store::{Listener, Notice, PresenceRow};
use crate::error::{Error, Result};

/// The channel every broker of the database listens on.
const CHANNEL: &str = "claudemesh";
/// How long the listener waits before connecting again after it lost its connection.
const RELISTEN: Duration = Duration::from_secs(1);

/// The database's clock in milliseconds: the brokers' own clocks may disagree.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

const PRESENCE_COLS: &str = "id, broker_id, mesh_id, member_id, pull, visible, groups, listing";

fn presence_row(r: &Row) -> Result<PresenceRow> {
    Ok(PresenceRow {
        id: r.at(0)?,
        broker_id: r.at(1)?,
        mesh_id: r.at(2)?,
        member_id: r.at(3)?,
        pull: r.at(4)?,
        visible: r.at(5)?,
        groups: r.at(6)?,
        listing: r.at(7)?,
    })
}

impl PgStore {
    /// A thread on a connection of its own that `LISTEN`s, hands every payload to the hub and wakes its loop.
    pub(crate) fn listen(&self) -> Result<Option<Listener>> {
        let wake = Arc::new(Wake::new().map_err(|e| Error::io(format!("a wake-up pipe: {e}")))?);
        let (tx, rx) = mpsc::channel();
        let (mut config, tls, label) = (self.config.clone(), self.tls.clone(), self.label.clone());
        // A listener that only listens would not notice a dead server for hours without keepalives.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        let waker = Arc::clone(&wake);
        std::thread::Builder::new()
            .name("pg-listen".into())
            .spawn(move || listen_loop(&config, &tls, &label, &tx, &waker))
            .map_err(|e| Error::io(format!("starting the listener: {e}")))?;
        Ok(Some(Listener { notices: rx, wake }))
    }

    pub(crate) fn broker_seen(
        &mut self,
        broker_id: &str,
        started_at: i64,
        alive_ms: i64,
    ) -> Result<usize> {
        self.exec(
            &format!(
                "INSERT INTO brokers (id, started_at, seen_at) VALUES ($1, $2, {NOW_MS}) \
                 ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at"
            ),
            &[&broker_id, &started_at],
        )?;
        let n: i64 = self
            .opt(
                &format!(
                    "SELECT count(*) FROM brokers WHERE id <> $1 AND seen_at >= {NOW_MS} - $2"
                ),
                &[&broker_id, &alive_ms],
                |r| r.at(0),
            )?
            .unwrap_or(0);
        Ok(usize::try_from(n).unwrap_or(0))
    }

    pub(crate) fn brokers_gone(&mut self, alive_ms: i64) -> Result<Vec<PresenceRow>> {
        let sql = format!(
            "DELETE FROM presences WHERE broker_id IN \
             (SELECT id FROM brokers WHERE seen_at < {NOW_MS} - $1) RETURNING {PRESENCE_COLS}"
        );
        let gone = self.write(|c| {
            c.query(&sql, &[&alive_ms])?
                .iter()
                .map(presence_row)
                .collect::<Result<Vec<_>>>()
        })?;
        self.exec(
            &format!("DELETE FROM brokers WHERE seen_at < {NOW_MS} - $1"),
            &[&alive_ms],
        )?;
        Ok(gone)
    }

    pub(crate) fn presence_put(&mut self, p: &PresenceRow) -> Result<()> {
        self.exec(
            &format!(
                "INSERT INTO presences ({PRESENCE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (id) DO UPDATE SET pull = EXCLUDED.pull, visible = EXCLUDED.visible, \
                 groups = EXCLUDED.groups, listing = EXCLUDED.listing"
            ),
            &[
                &p.id,
                &p.broker_id,
                &p.mesh_id,
                &p.member_id,
                &p.pull,
                &p.visible,
                &p.groups,
                &p.listing,
            ],
        )
        .map(drop)
    }

    pub(crate) fn presence_drop(&mut self, id: &str) -> Result<()> {
        self.exec("DELETE FROM presences WHERE id = $1", &[&id])
            .map(drop)
    }

    pub(crate) fn presences_elsewhere(
        &self,
        mesh_id: &str,
        broker_id: &str,
        alive_ms: i64,
    ) -> Result<Vec<PresenceRow>> {
        self.all(
            &format!(
                "SELECT {PRESENCE_COLS} FROM presences WHERE mesh_id = $1 AND broker_id <> $2 \
                 AND broker_id IN (SELECT id FROM brokers WHERE seen_at >= {NOW_MS} - $3) ORDER BY id"
            ),
            &[&mesh_id, &broker_id, &alive_ms],
            presence_row,
        )
    }

    pub(crate) fn relay(&mut self, payload: &str) -> Result<()> {
        self.write(|c| c.query("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]))
            .map(drop)
    }

    pub(crate) fn relay_store(&mut self, body: &str, now: i64) -> Result<i64> {
        self.write(|c| {
            c.query_opt(
                "INSERT INTO relays (body, created_at) VALUES ($1, $2) RETURNING id",
                &[&body, &now],
            )?
            .ok_or_else(|| Error::internal("INSERT ... RETURNING gave no row"))?
            .at(0)
        })
    }

    pub(crate) fn relay_stored(&self, id: i64) -> Result<Option<String>> {
        self.opt("SELECT body FROM relays WHERE id = $1", &[&id], |r| r.at(0))
    }

    pub(crate) fn relay_sweep(&mut self, before: i64) -> Result<()> {
        self.exec("DELETE FROM relays WHERE created_at < $1", &[&before])
            .map(drop)
    }

    /// Why two statements: the upsert refills the bucket and locks its row (a new row is locked too, so a second
    /// broker's insert waits for this commit rather than making a full bucket of its own); what to take is
    /// decided on the refilled count.
    pub(crate) fn take_tokens(
        &mut self,
        key: &str,
        want: u32,
        per_second: f64,
        burst: f64,
        now: i64,
    ) -> Result<(u32, u64)> {
        self.write(|c| {
            let tokens: f64 = c
                .query_opt(
                    "INSERT INTO rate_buckets AS b (key, tokens, at) VALUES ($1, $2::float8, $3) \
                     ON CONFLICT (key) DO UPDATE SET \
                     tokens = LEAST($2::float8, b.tokens + GREATEST(0, $3 - b.at) * $4::float8 / 1000.0), \
                     at = GREATEST(b.at, $3) \
                     RETURNING tokens",
                    &[&key, &burst, &now, &per_second],
                )?
                .ok_or_else(|| Error::internal("INSERT ... RETURNING gave no row"))?
                .at(0)?;
            let granted = tokens.max(0.0).floor().min(f64::from(want)) as u32;
            if granted == 0 {
                let wait = ((1.0 - tokens) / per_second * 1000.0).ceil().max(1.0);
                return Ok((0, wait as u64));
            }
            c.execute(
                "UPDATE rate_buckets SET tokens = tokens - $2::float8 WHERE key = $1",
                &[&key, &f64::from(granted)],
            )?;
            Ok((granted, 0))
        })
    }

    pub(crate) fn rate_sweep(&mut self, before: i64) -> Result<()> {
        self.exec("DELETE FROM rate_buckets WHERE at < $1", &[&before])
            .map(drop)
    }
}

/// Listens until the hub is gone, connecting again (and saying so) whenever the connection is lost.
fn listen_loop(
    config: &postgres::Config,
    tls: &super::tls::Tls,
    label: &str,
    tx: &mpsc::Sender<Notice>,
    wake: &Wake,
) {
    let mut said = false;
    loop {
        match connect(config, tls, label).and_then(|mut c| {
            c.batch_execute(&format!("LISTEN {CHANNEL}"))
                .map(|()| c)
                .map_err(super::db)
        }) {
            Ok(mut client) => {
                said = false;
                if tx.send(Notice::Listening).is_err() {
                    return;
                }
                wake.trigger();
                let mut notes = client.notifications();
                let mut it = notes.blocking_iter();
                loop {
                    match it.next() {
                        Ok(Some(n)) => {
                            if tx.send(Notice::Event(n.payload().to_string())).is_err() {
                                return;
                            }
                            wake.trigger();
                        }
                        Ok(None) => break,
                        Err(e) => {
                            log::warn(
                                "listening to the other brokers stopped; connecting again",
                                &[("error", &super::describe(&e))],
                            );
                            break;
                        }
                    }
                }
            }
            Err(e) if !said => {
                said = true;
                log::warn(
                    "cannot listen to the other brokers; trying again every second",
                    &[("error", &e)],
                );
            }
            Err(_) => {}
        }
        std::thread::sleep(RELISTEN);
    }
}
