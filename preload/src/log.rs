//! One-line messages on stderr: `shunt: <text>` for errors and warnings,
//! `shunt: <level>: <text>` below. Formatted into a stack buffer and
//! written with one raw `write(2)` on fd 2 (rustix, no libc symbol we
//! export, no allocation, no lock), so a line never interleaves with
//! another thread's and logging never re-enters a hook.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};

use rustix::fd::BorrowedFd;

use crate::config::LogLevel;

/// Longest line; longer text is cut with `...`.
pub const LINE_MAX: usize = 512;

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Warn as u8);

pub fn set_level(l: LogLevel) {
    LEVEL.store(l as u8, Ordering::Relaxed);
}

pub fn level() -> LogLevel {
    match LEVEL.load(Ordering::Relaxed) {
        0 => LogLevel::Off,
        1 => LogLevel::Error,
        2 => LogLevel::Warn,
        3 => LogLevel::Info,
        _ => LogLevel::Debug,
    }
}

#[inline]
pub fn enabled(l: LogLevel) -> bool {
    l != LogLevel::Off && l as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// A fixed buffer that keeps what fits.
pub struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
    cut: bool,
}

impl Line {
    pub fn new() -> Line {
        Line {
            buf: [0; LINE_MAX],
            len: 0,
            cut: false,
        }
    }

    /// The line with its newline (and `...` if it was cut).
    pub fn finish(&mut self) -> &[u8] {
        // Keep room for "...\n".
        if self.cut {
            self.len = self.len.min(LINE_MAX - 4);
            self.buf[self.len..self.len + 3].copy_from_slice(b"...");
            self.len += 3;
        } else {
            self.len = self.len.min(LINE_MAX - 1);
        }
        self.buf[self.len] = b'\n';
        &self.buf[..self.len + 1]
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Never more than LINE_MAX - 1 bytes, so finish() has room for
        // the newline; one line: newlines in the text become spaces.
        let room = (LINE_MAX - 1).saturating_sub(self.len);
        let n = s.len().min(room);
        for (d, &b) in self.buf[self.len..self.len + n]
            .iter_mut()
            .zip(s.as_bytes())
        {
            *d = if b == b'\n' { b' ' } else { b };
        }
        self.len += n;
        if n < s.len() {
            self.cut = true;
        }
        Ok(())
    }
}

/// Format `shunt: [level: ]args` and write it to fd 2 in one call.
pub fn line(l: LogLevel, args: fmt::Arguments<'_>) {
    let mut line = Line::new();
    let _ = match l {
        LogLevel::Error | LogLevel::Warn | LogLevel::Off => line.write_str("shunt: "),
        LogLevel::Info => line.write_str("shunt: info: "),
        LogLevel::Debug => line.write_str("shunt: debug: "),
    };
    let _ = line.write_fmt(args);
    write_stderr(line.finish());
}

/// Write raw bytes to fd 2 with the system call, retrying on EINTR and
/// short writes; errors are dropped (there is nowhere to report them).
pub fn write_stderr(mut bytes: &[u8]) {
    // SAFETY: fd 2 is only borrowed for the duration of the write; if it
    // is closed the kernel answers EBADF and we give up.
    let fd = unsafe { BorrowedFd::borrow_raw(2) };
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
    }
}

/// `log!(Warn, "...", args)`: one line if the level is enabled.
#[macro_export]
macro_rules! log {
    ($level:ident, $($arg:tt)*) => {
        if $crate::log::enabled($crate::config::LogLevel::$level) {
            $crate::log::line($crate::config::LogLevel::$level, format_args!($($arg)*));
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_and_single() {
        let mut l = Line::new();
        write!(l, "a\nb").unwrap();
        assert_eq!(l.finish(), b"a b\n");
        let mut l = Line::new();
        for _ in 0..100 {
            l.write_str("0123456789").unwrap();
        }
        let out = l.finish();
        assert_eq!(out.len(), LINE_MAX);
        assert!(out.ends_with(b"...\n"));
        let mut l = Line::new();
        l.write_str(&"x".repeat(LINE_MAX - 1)).unwrap();
        assert_eq!(l.finish().len(), LINE_MAX);
    }

    #[test]
    fn levels() {
        set_level(LogLevel::Warn);
        assert!(enabled(LogLevel::Error) && enabled(LogLevel::Warn));
        assert!(!enabled(LogLevel::Info) && !enabled(LogLevel::Off));
        set_level(LogLevel::Off);
        assert!(!enabled(LogLevel::Error));
        assert_eq!(level(), LogLevel::Off);
        set_level(LogLevel::Warn);
    }
}
