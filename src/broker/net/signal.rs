//! Shutdown on SIGINT and SIGTERM: a signal handler that only writes a byte the event loop wakes on.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// Stops [`serve`](super::serve): on SIGINT/SIGTERM once installed, or when triggered.
///
/// A signal handler may only do async-signal-safe things, so it writes one byte to a pipe the event loop watches.
pub struct Shutdown {
    pub(super) read: OwnedFd,
    write: OwnedFd,
    installed: bool,
}

/// The write end of the installed [`Shutdown`]'s pipe, for the signal handler.
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: libc::c_int) {
    let fd = SIGNAL_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let errno = errno_location();
        // SAFETY: errno_location points at this thread's errno; write(2) is async-signal-safe.
        unsafe {
            let saved = errno.map(|e| *e);
            libc::write(fd, b"x".as_ptr().cast(), 1);
            if let (Some(e), Some(v)) = (errno, saved) {
                *e = v;
            }
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn errno_location() -> Option<*mut libc::c_int> {
    // SAFETY: always returns this thread's errno.
    Some(unsafe { libc::__errno_location() })
}

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
fn errno_location() -> Option<*mut libc::c_int> {
    // SAFETY: always returns this thread's errno.
    Some(unsafe { libc::__error() })
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
)))]

fn errno_location() -> Option<*mut libc::c_int> {
    None
}

impl Shutdown {
    /// A switch that only [`Shutdown::trigger`] flips.
    pub fn new() -> io::Result<Shutdown> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds has room for the two descriptors pipe(2) writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe(2) just returned these two descriptors and nothing else owns them.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [read.as_raw_fd(), write.as_raw_fd()] {
            // SAFETY: fcntl on a descriptor we own.
            unsafe {
                libc::fcntl(
                    fd,
                    libc::F_SETFL,
                    libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
                );
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(Shutdown {
            read,
            write,
            installed: false,
        })
    }

    /// A switch that SIGINT and SIGTERM flip, and [`Shutdown::trigger`].
    pub fn install() -> io::Result<Shutdown> {
        let mut s = Shutdown::new()?;
        SIGNAL_FD.store(s.write.as_raw_fd(), Ordering::Relaxed);
        s.installed = true;
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction is valid; the handler only calls async-signal-safe functions.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(s)
    }

    /// Asks the loop to shut down.
    pub fn trigger(&self) {
        // SAFETY: writing one byte from a live buffer to a descriptor we own. A full pipe already holds a request.
        unsafe { libc::write(self.write.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    }

    pub(super) fn drain(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reading into a live buffer of the given length from a descriptor we own.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        if self.installed {
            let _ = SIGNAL_FD.compare_exchange(
                self.write.as_raw_fd(),
                -1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
}
