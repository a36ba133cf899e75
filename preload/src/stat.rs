//! The stack's export for `shunt stat`: counters and socket table in a
//! small text file, `/run/shunt/stat/<pid>`, rendered by the progress
//! thread at most every [`EXPORT_EVERY`] while something changed, written
//! by a thread of its own (a new file renamed over the old one, so a
//! reader sees one whole snapshot), and removed at exit. A process killed before its exit leaves
//! the file behind: it carries the process's start time, so a reader
//! tells it from a later process with the same pid, and `shunt stat`
//! removes it.
//!
//! Format, one item a line, fields separated by one space:
//!
//! ```text
//! shunt-stat 1
//! pid 4242
//! start 123456            (field 22 of /proc/PID/stat)
//! comm curl
//! exe /usr/bin/curl
//! iface veth0
//! device AF_XDP (native XDP, copy mode)   (the rest of the line)
//! addr 192.0.2.1/24
//! counter IpInReceives 7  (non-zero counters, nstat's names)
//! tcp ESTAB 0 0 192.0.2.1:40812 192.0.2.2:8000
//! udp UNCONN 0 0 192.0.2.1:5353 *:*
//! end
//! ```
//!
//! Socket lines are `proto state recv-q send-q local peer`, as `ss -tuna`
//! prints them. Every file operation is a raw system call.

use std::fmt::Write as _;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use rustix::fs::{Mode, OFlags};
use shunt_stack::Stack;
use shunt_stack::tcp::{TcpCounter, TcpState};

use crate::config::Config;

/// Where exports live (shared by every network namespace: pids are not
/// per network namespace).
pub const STAT_DIR: &str = "/run/shunt/stat";
/// The shortest time between two rewrites.
pub const EXPORT_EVERY: Duration = Duration::from_millis(100);
/// The first line of an export.
pub const MAGIC: &str = "shunt-stat 1";

/// `ss`'s name for a TCP state.
pub fn state_name(s: TcpState) -> &'static str {
    match s {
        TcpState::Established => "ESTAB",
        TcpState::SynSent => "SYN-SENT",
        TcpState::SynRecv => "SYN-RECV",
        TcpState::FinWait1 => "FIN-WAIT-1",
        TcpState::FinWait2 => "FIN-WAIT-2",
        TcpState::TimeWait => "TIME-WAIT",
        TcpState::Close => "UNCONN",
        TcpState::CloseWait => "CLOSE-WAIT",
        TcpState::LastAck => "LAST-ACK",
        TcpState::Listen => "LISTEN",
        TcpState::Closing => "CLOSING",
    }
}

/// nstat's name of a TCP counter: `Tcp` for the `Tcp:` group of
/// /proc/net/snmp, `TcpExt` for /proc/net/netstat's.
pub fn tcp_counter_name(c: TcpCounter) -> String {
    use TcpCounter::*;
    let group = match c {
        ActiveOpens | PassiveOpens | AttemptFails | EstabResets | InSegs | OutSegs
        | RetransSegs | InErrs | OutRsts | InCsumErrors => "Tcp",
        _ => "TcpExt",
    };
    format!("{group}{}", c.name())
}

/// Read a small file whole with raw system calls.
fn read_small(path: &str) -> Option<String> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        match rustix::io::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

/// A process's start time (clock ticks since boot), from its stat file.
pub fn start_time(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields count from
    // the last ')'. The start time is field 22, the 20th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// This process's export. The progress thread renders it; a writer
/// thread of its own writes it (see [`Export::run`]).
pub struct Export {
    path: String,
    tmp: String,
    /// The configuration's lines (`iface`, `device`, `addr`).
    cfg_lines: String,
    state: Mutex<State>,
    cv: Condvar,
}

struct State {
    /// The latest snapshot not written yet.
    body: Option<String>,
    /// Set at exit: no more rewrites. The writer holds the state across a
    /// rewrite, so exit never races one that would bring the file back.
    closed: bool,
}

impl Export {
    /// `None` when the directory cannot be made (not root, read-only
    /// /run): `shunt stat` then does not see this process.
    pub fn new(cfg: &Config, device: &str) -> Option<Export> {
        let _ = rustix::fs::mkdir("/run/shunt", Mode::from_raw_mode(0o755));
        let _ = rustix::fs::mkdir(STAT_DIR, Mode::from_raw_mode(0o755));
        rustix::fs::access(STAT_DIR, rustix::fs::Access::WRITE_OK).ok()?;
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        let mut cfg_lines = format!("iface {}\ndevice {device}\n", cfg.iface);
        for a in &cfg.addrs {
            let _ = writeln!(cfg_lines, "addr {a}");
        }
        Some(Export {
            path: format!("{STAT_DIR}/{pid}"),
            tmp: format!("{STAT_DIR}/.{pid}.tmp"),
            cfg_lines,
            state: Mutex::new(State {
                body: None,
                closed: false,
            }),
            cv: Condvar::new(),
        })
    }

    /// The export's body for the stack's state now (the progress thread,
    /// under the stack's lock).
    pub fn render(stack: &Stack, device: &[(&str, u64)]) -> String {
        let mut s = String::with_capacity(4096);
        // The device's counters first (non-zero ones): drops at the ring
        // are where a stack that looks healthy loses frames.
        for (name, v) in device.iter().filter(|(_, v)| *v != 0) {
            let _ = writeln!(s, "counter {name} {v}");
        }
        render_body(&mut s, stack);
        s
    }

    /// Hand a snapshot to the writer (a newer one replaces one it has not
    /// written yet).
    pub fn submit(&self, body: String) {
        let mut st = self.state.lock();
        if !st.closed {
            st.body = Some(body);
            self.cv.notify_one();
        }
    }

    /// At exit: remove the file, and stop the writer.
    pub fn remove(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        let _ = rustix::fs::unlink(self.path.as_str());
        let _ = rustix::fs::unlink(self.tmp.as_str());
        self.cv.notify_one();
    }

    /// The writer thread. Opening a file takes the lowest free descriptor
    /// number, which is the program's to have (a program may check what
    /// socket() or dup() returned): this thread first leaves the
    /// process's descriptor table for a copy of its own, closes every
    /// descriptor in the copy, and from then on opens files where the
    /// program cannot see them.
    pub fn run(&self) {
        // SAFETY: a full set, applied to this thread only; signals are the
        // program's threads' business.
        unsafe {
            let mut all: libc::sigset_t = core::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, core::ptr::null_mut());
        }
        // SAFETY: unshare(2) and close_range(2) with plain integers; they
        // act on this thread's own descriptor table once it is unshared.
        let private = unsafe {
            libc::syscall(libc::SYS_unshare, libc::CLONE_FILES) == 0
                && libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) == 0
        };
        if !private {
            crate::log!(Debug, "shunt stat: no private descriptor table; no export");
            return;
        }
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        let Some(start) = read_small("/proc/self/stat")
            .as_deref()
            .and_then(start_time)
        else {
            return;
        };
        let comm: String = read_small("/proc/self/comm")
            .unwrap_or_default()
            .trim_end_matches('\n')
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        // The program: after an execve(2) the pid and start time stay, and
        // the file may outlive the image that wrote it.
        let exe = rustix::fs::readlink("/proc/self/exe", Vec::new())
            .ok()
            .map(|p| p.to_string_lossy().replace(char::is_whitespace, "_"))
            .unwrap_or_default();
        let head = format!(
            "{MAGIC}\npid {pid}\nstart {start}\ncomm {comm}\nexe {exe}\n{}",
            self.cfg_lines
        );
        let mut failed = false;
        let mut st = self.state.lock();
        loop {
            if st.closed {
                return;
            }
            let Some(body) = st.body.take() else {
                self.cv.wait(&mut st);
                continue;
            };
            let ok = self.write(&head, &body);
            if !ok && !failed {
                crate::log!(Debug, "shunt stat: cannot write {}", self.path);
            }
            failed = !ok;
        }
    }

    /// Replace the file (a new one renamed over it).
    fn write(&self, head: &str, body: &str) -> bool {
        let Ok(fd) = rustix::fs::open(
            self.tmp.as_str(),
            OFlags::CREATE | OFlags::TRUNC | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        ) else {
            return false;
        };
        for part in [head.as_bytes(), body.as_bytes()] {
            let mut off = 0;
            while off < part.len() {
                match rustix::io::write(&fd, &part[off..]) {
                    Ok(n) => off += n,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => return false,
                }
            }
        }
        drop(fd);
        rustix::fs::rename(self.tmp.as_str(), self.path.as_str()).is_ok()
    }
}

fn render_body(s: &mut String, stack: &Stack) {
    for (c, v) in stack.counters().nonzero() {
        let _ = writeln!(s, "counter {} {v}", c.name());
    }
    for &c in TcpCounter::ALL {
        let v = stack.tcp_counter(c);
        if v != 0 {
            let _ = writeln!(s, "counter {} {v}", tcp_counter_name(c));
        }
    }
    let tcp = stack.tcp_layer().table();
    // Linux's CurrEstab: connections in ESTABLISHED or CLOSE-WAIT.
    let estab = tcp
        .iter()
        .filter(|r| matches!(r.state, TcpState::Established | TcpState::CloseWait))
        .count();
    if estab != 0 {
        let _ = writeln!(s, "counter TcpCurrEstab {estab}");
    }
    for r in &tcp {
        let local = r.local.map_or("*:*".to_string(), |a| a.to_string());
        let peer = r.remote.map_or_else(
            || {
                let any = r.local.map_or("*".to_string(), |a| {
                    if a.ip.is_v4() {
                        "0.0.0.0".into()
                    } else {
                        "[::]".into()
                    }
                });
                format!("{any}:*")
            },
            |a| a.to_string(),
        );
        let _ = writeln!(
            s,
            "tcp {} {} {} {local} {peer}",
            state_name(r.state),
            r.recv_q,
            r.send_q
        );
    }
    for r in stack.udp4_table() {
        let (state, peer) = match r.remote {
            Some((a, p)) => ("ESTAB", format!("{a}:{p}")),
            None => ("UNCONN", "0.0.0.0:*".to_string()),
        };
        let _ = writeln!(
            s,
            "udp {state} {} 0 {}:{} {peer}",
            r.recv_q, r.local.0, r.local.1
        );
    }
    s.push_str("end\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_counts_from_the_last_parenthesis() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time(line), Some(987654));
        assert_eq!(start_time("garbage"), None);
        let own = read_small("/proc/self/stat").unwrap();
        assert!(start_time(&own).is_some(), "{own}");
    }

    #[test]
    fn counter_names_are_nstat_names() {
        assert_eq!(tcp_counter_name(TcpCounter::ActiveOpens), "TcpActiveOpens");
        assert_eq!(tcp_counter_name(TcpCounter::RetransSegs), "TcpRetransSegs");
        assert_eq!(
            tcp_counter_name(TcpCounter::TcpTimeouts),
            "TcpExtTCPTimeouts"
        );
        assert_eq!(
            tcp_counter_name(TcpCounter::DelayedAcks),
            "TcpExtDelayedACKs"
        );
        assert_eq!(state_name(TcpState::Established), "ESTAB");
    }

    #[test]
    fn render_lists_counters_and_sockets() {
        use shunt_stack::tcp::{Domain, SockAddr};
        use shunt_stack::time::Instant;
        use shunt_stack::{Mac, StackConfig};
        let mut st = Stack::new(StackConfig::new(Mac([2, 0, 0, 0, 0, 1])));
        st.add_ipv4_address([192, 0, 2, 1].into(), 24, Instant::ZERO)
            .unwrap();
        let now = Instant::ZERO;
        let (l, c) = st.tcp(now, |t, cx| {
            let l = t.socket(Domain::V4);
            t.bind(cx, l, SockAddr::v4([0, 0, 0, 0], 8000)).unwrap();
            t.listen(cx, l, 16).unwrap();
            let c = t.socket(Domain::V4);
            t.connect(cx, c, SockAddr::v4([192, 0, 2, 1], 8000)).ok();
            (l, c)
        });
        let u = st.udp_socket();
        st.udp_bind(u, "192.0.2.1:5353".parse().unwrap()).unwrap();
        let mut s = String::new();
        render_body(&mut s, &st);
        assert!(s.contains("counter TcpActiveOpens 1\n"), "{s}");
        assert!(s.contains("tcp LISTEN "), "{s}");
        assert!(s.contains(" 0.0.0.0:8000 0.0.0.0:*\n"), "{s}");
        assert!(s.contains("tcp ESTAB 0 0 192.0.2.1:8000 192.0.2.1:"), "{s}");
        assert!(
            s.contains("udp UNCONN 0 0 192.0.2.1:5353 0.0.0.0:*\n"),
            "{s}"
        );
        assert!(s.contains("counter TcpCurrEstab 2\n"), "{s}");
        assert!(s.ends_with("end\n"));
        // The client closes its socket: the connection stays in the table
        // (FIN-WAIT-1) while the server's end waits in CLOSE-WAIT; the
        // server's end closes: the client's end is in TIME-WAIT.
        let a = st.tcp(now, |t, cx| {
            t.close(cx, c);
            t.accept(cx, l).expect("an accepted connection").0
        });
        let mut s = String::new();
        render_body(&mut s, &st);
        assert!(s.contains("tcp FIN-WAIT-1 0 0 192.0.2.1:"), "{s}");
        assert!(s.contains("tcp CLOSE-WAIT 0 0 192.0.2.1:8000 "), "{s}");
        st.tcp(now, |t, cx| t.close(cx, a));
        let mut s = String::new();
        render_body(&mut s, &st);
        assert!(s.contains("tcp TIME-WAIT 0 0 192.0.2.1:"), "{s}");
        assert!(!s.contains("CLOSE-WAIT"), "{s}");
    }
}
