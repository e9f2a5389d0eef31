//! Stop signals for the tools that run until stopped (`cm-topic tail`, `cm-bridge`, `cm-mcp`, `cm-broker`).
//!
//! One way for all of them: the signals are blocked in the calling thread, and so in every thread it starts
//! afterwards, and one thread waits for them with `sigwait` and hands the first to a closure. Nothing runs inside
//! a signal handler, so the closure may lock, allocate and send on a channel. Call [`watch`] before starting any
//! other thread: a thread started earlier keeps its mask and could take the signal instead.
//!
//! Ctrl-C (SIGINT) ends a tool with [`Code::Interrupted`](crate::error::Code::Interrupted), exit status 130, after
//! it closed what it had open; SIGTERM and SIGHUP are the ordinary way to stop a service, exit status 0
//! (`cm-broker` takes SIGHUP as the daemon convention has it instead: reload, see [`watch_each`]). A second
//! signal while it closes ends it at once.

use crate::error::{Error, Result};

/// A signal that stops a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C at a terminal.
    Interrupt,
    /// SIGTERM: a service manager or `kill`.
    Terminate,
    /// SIGHUP: the terminal or the parent went away.
    Hangup,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Signal::Interrupt => libc::SIGINT,
            Signal::Terminate => libc::SIGTERM,
            Signal::Hangup => libc::SIGHUP,
        }
    }

    fn of(raw: libc::c_int) -> Option<Signal> {
        [Signal::Interrupt, Signal::Terminate, Signal::Hangup]
            .into_iter()
            .find(|s| s.raw() == raw)
    }

    /// The signal's usual name, for logs: `SIGINT`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
        }
    }

    /// How a tool stopped by this signal ends: an interrupted run is an error (exit 130, no message); the
    /// others are a clean stop.
    pub fn outcome(self) -> Result<()> {
        match self {
            Signal::Interrupt => Err(Error::interrupted()),
            Signal::Terminate | Signal::Hangup => Ok(()),
        }
    }
}

/// Blocks `signals` in this thread and the threads it starts from now on, and starts a thread that waits for the
/// first of them and calls `on` with it.
pub fn watch(signals: &[Signal], on: impl FnOnce(Signal) + Send + 'static) -> Result<()> {
    let mut on = Some(on);
    watch_each(signals, move |s| {
        if let Some(f) = on.take() {
            f(s);
        }
        Flow::Stop
    })
}

/// What a watcher does after a signal: wait for the next, or stop (then a second signal ends the process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// [`watch`] for a service that handles some signals and goes on (`cm-broker` reloads its certificate on
/// SIGHUP): `on` is called for each signal until it answers [`Flow::Stop`]. One thread waits for all of them,
/// because a signal blocked for one watcher and not for another would reach the other's thread with its default
/// action.
pub fn watch_each(
    signals: &[Signal],
    mut on: impl FnMut(Signal) -> Flow + Send + 'static,
) -> Result<()> {
    // SAFETY: the set is zeroed (a valid value) and initialised by sigemptyset before use; pthread_sigmask only
    // changes this thread's mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, s.raw());
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(Error::internal("blocking the stop signals failed"));
        }
        set
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                let mut raw: libc::c_int = 0;
                // SAFETY: `set` is a valid, initialised signal set and `raw` a valid place for the answer.
                if unsafe { libc::sigwait(&set, &mut raw) } != 0 {
                    return;
                }
                if let Some(s) = Signal::of(raw)
                    && on(s) == Flow::Stop
                {
                    break;
                }
            }
            // A second signal while the tool closes down ends it at once: this thread stops blocking them and
            // stays, so the next one is delivered here with its default action.
            // SAFETY: changes this thread's mask only, with the valid set from above.
            unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
            loop {
                std::thread::park();
            }
        })
        .map(drop)
        .map_err(|e| Error::internal(format!("starting the signal thread: {e}")))
}
