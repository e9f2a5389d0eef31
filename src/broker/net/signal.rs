//! [`Wake`]: a pipe the event loop watches, so another thread can wake it: [`Shutdown`] for a stop (the signal
//! thread of [`crate::signal`], or a test), and the handler's own (news from other brokers).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Stops [`serve`](super::serve) when triggered.
pub type Shutdown = Wake;

/// Wakes the event loop from another thread.
pub struct Wake {
    pub(super) read: OwnedFd,
    write: OwnedFd,
}

impl Wake {
    /// A switch that [`Wake::trigger`] flips.
    pub fn new() -> io::Result<Wake> {
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
        Ok(Wake { read, write })
    }

    /// Wakes the loop (for a [`Shutdown`]: asks it to shut down).
    pub fn trigger(&self) {
        // SAFETY: writing one byte from a live buffer to a descriptor we own. A full pipe already holds a request.
        unsafe { libc::write(self.write.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    }

    /// Empties the pipe, so the loop sleeps until the next trigger.
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reading into a live buffer of the given length from a descriptor we own.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
    }
}

impl std::os::fd::AsRawFd for Wake {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.read.as_raw_fd()
    }
}
