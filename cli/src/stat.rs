//! `shunt stat [PID]`: the counters and socket table of running shunt
//! stacks, read from the exports libshunt.so keeps in /run/shunt/stat
//! (format: preload/src/stat.rs). Without PID, every running stack;
//! exports whose process is gone (or is another process with the same
//! pid) are removed on the way.

use std::path::Path;

use crate::args;

pub const USAGE: &str = "  stat [PID] [--dir DIR]
      counters (nstat's names) and sockets (as ss -tuna) of the shunt stack
      of process PID, or of every running one";

const STAT_DIR: &str = "/run/shunt/stat";
const MAGIC: &str = "shunt-stat 1";

pub fn main(argv: &[String]) -> i32 {
    match run(argv) {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(e) => {
            eprintln!("shunt stat: {e}");
            1
        }
    }
}

/// One parsed export.
#[derive(Debug, Default, PartialEq)]
pub struct Snapshot {
    pub pid: u32,
    pub start: u64,
    pub comm: String,
    /// The program that wrote it (empty: not known).
    pub exe: String,
    pub iface: String,
    /// The device shunt runs on ("AF_PACKET", "AF_XDP (...)"; empty: an
    /// export from before the line existed).
    pub device: String,
    pub addrs: Vec<String>,
    pub counters: Vec<(String, u64)>,
    /// proto, state, recv-q, send-q, local, peer.
    pub sockets: Vec<[String; 6]>,
}

/// Parse an export; `None` when it is not a whole one.
pub fn parse(text: &str) -> Option<Snapshot> {
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let mut s = Snapshot::default();
    let mut complete = false;
    for line in lines {
        let mut f = line.split(' ');
        match f.next()? {
            "pid" => s.pid = f.next()?.parse().ok()?,
            "start" => s.start = f.next()?.parse().ok()?,
            "comm" => s.comm = f.next().unwrap_or("").to_string(),
            "exe" => s.exe = f.next().unwrap_or("").to_string(),
            "iface" => s.iface = f.next()?.to_string(),
            "device" => s.device = line["device".len()..].trim().to_string(),
            "addr" => s.addrs.push(f.next()?.to_string()),
            "counter" => {
                let name = f.next()?.to_string();
                s.counters.push((name, f.next()?.parse().ok()?));
            }
            proto @ ("tcp" | "udp") => {
                let v: Vec<&str> = f.collect();
                let [state, rq, sq, local, peer] = v.as_slice() else {
                    return None;
                };
                s.sockets
                    .push([proto, state, rq, sq, local, peer].map(str::to_string));
            }
            "end" => complete = true,
            _ => {} // a later version's line
        }
    }
    (complete && s.pid != 0).then_some(s)
}

/// A live process's start time from its /proc stat line (`None` for a
/// zombie: its stack is gone).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    if f.next()? == "Z" {
        return None;
    }
    f.nth(18)?.parse().ok()
}

/// Why a pid has no export.
fn no_export(pid: u32) -> String {
    if start_time(pid).is_none() {
        return format!("no such process: {pid}");
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    if maps.contains("libshunt.so") {
        format!(
            "pid {pid} has libshunt.so loaded but no running stack (no INET socket yet, or it runs on the kernel)"
        )
    } else {
        format!("pid {pid} is not a shunt process")
    }
}

/// The export of `pid` if it belongs to that live process; a stale one
/// is removed.
fn load(dir: &Path, pid: u32) -> Option<Snapshot> {
    let path = dir.join(pid.to_string());
    let text = std::fs::read_to_string(&path).ok()?;
    let snap = parse(&text)?;
    if snap.pid != pid || start_time(pid) != Some(snap.start) {
        let _ = std::fs::remove_file(&path);
        return None;
    }
    // Written before the process exec'd another program: not its stack
    // (left in place: the new program may be about to write its own).
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().replace(char::is_whitespace, "_"))
        .unwrap_or_default();
    if !snap.exe.is_empty() && !exe.is_empty() && snap.exe != exe {
        return None;
    }
    Some(snap)
}

fn run(argv: &[String]) -> Result<String, String> {
    let a = args::parse(argv, &["dir"], &[])?;
    let dir = Path::new(a.value("dir").unwrap_or(STAT_DIR));
    match a.positional.as_slice() {
        [] => {
            let mut pids: Vec<u32> = Vec::new();
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if let Ok(pid) = name.parse() {
                    pids.push(pid);
                } else if let Some(pid) = name
                    .strip_prefix('.')
                    .and_then(|n| n.strip_suffix(".tmp"))
                    .and_then(|n| n.parse::<u32>().ok())
                    && start_time(pid).is_none()
                {
                    // A rewrite cut short by the process's death.
                    let _ = std::fs::remove_file(e.path());
                }
            }
            pids.sort_unstable();
            let snaps: Vec<Snapshot> = pids.into_iter().filter_map(|p| load(dir, p)).collect();
            if snaps.is_empty() {
                return Ok("no shunt stack is running\n".into());
            }
            Ok(snaps.iter().map(render).collect::<Vec<_>>().join("\n"))
        }
        [p] => {
            let pid: u32 = p
                .parse()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("{p:?} is not a process id"))?;
            load(dir, pid)
                .map(|s| render(&s))
                .ok_or_else(|| no_export(pid))
        }
        _ => Err("expected at most one PID (usage: shunt stat [PID])".into()),
    }
}

/// A snapshot as people read it: a title, the counters in two columns as
/// nstat prints them, the sockets as `ss -tuna`.
pub fn render(s: &Snapshot) -> String {
    let mut out = format!(
        "pid {} ({}) on {} {}",
        s.pid,
        s.comm,
        s.iface,
        s.addrs.join(",")
    );
    if !s.device.is_empty() {
        out += &format!(" via {}", s.device);
    }
    out.push('\n');
    for (name, v) in &s.counters {
        out += &format!("{name:<32}{v:>14}\n");
    }
    let w = s
        .sockets
        .iter()
        .flat_map(|r| [r[4].len(), r[5].len()])
        .max()
        .unwrap_or(0)
        .max(17);
    out += &format!(
        "Netid State      Recv-Q Send-Q {:<w$} {}\n",
        "Local Address:Port", "Peer Address:Port"
    );
    for [proto, state, rq, sq, local, peer] in &s.sockets {
        out += &format!("{proto:<5} {state:<10} {rq:>6} {sq:>6} {local:<w$} {peer}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "shunt-stat 1\npid 42\nstart 99\ncomm curl\niface veth0\n\
        device AF_XDP (native XDP, copy mode)\naddr 192.0.2.1/24\n\
        counter IpInReceives 7\ncounter TcpActiveOpens 1\n\
        tcp ESTAB 0 5 192.0.2.1:40000 192.0.2.2:8000\nudp UNCONN 0 0 192.0.2.1:53 0.0.0.0:*\nend\n";

    #[test]
    fn parses_and_renders_an_export() {
        let s = parse(SAMPLE).unwrap();
        assert_eq!((s.pid, s.start, s.comm.as_str()), (42, 99, "curl"));
        assert_eq!(s.counters[0], ("IpInReceives".to_string(), 7));
        assert_eq!(s.sockets.len(), 2);
        let r = render(&s);
        assert!(
            r.starts_with(
                "pid 42 (curl) on veth0 192.0.2.1/24 via AF_XDP (native XDP, copy mode)\n"
            ),
            "{r}"
        );
        assert!(r.contains("TcpActiveOpens"), "{r}");
        let line = r.lines().find(|l| l.starts_with("tcp")).unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            f,
            [
                "tcp",
                "ESTAB",
                "0",
                "5",
                "192.0.2.1:40000",
                "192.0.2.2:8000"
            ]
        );
    }

    #[test]
    fn partial_or_foreign_files_are_rejected() {
        assert!(parse(&SAMPLE[..SAMPLE.len() - 4]).is_none());
        assert!(parse("hello\nend\n").is_none());
        assert!(parse("").is_none());
    }

    #[test]
    fn stale_exports_are_removed_and_errors_are_one_line() {
        let dir = std::env::temp_dir().join(format!("shunt-stat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let me = std::process::id();
        // Our own pid with a wrong start time: a stale export.
        std::fs::write(
            dir.join(me.to_string()),
            SAMPLE
                .replace("pid 42", &format!("pid {me}"))
                .replace("start 99", "start 1"),
        )
        .unwrap();
        let d = dir.to_str().unwrap().to_string();
        let out = run(&["--dir".into(), d.clone()]).unwrap();
        assert_eq!(out, "no shunt stack is running\n");
        assert!(!dir.join(me.to_string()).exists(), "stale export kept");
        std::fs::write(dir.join(".999999999.tmp"), "x").unwrap();
        run(&["--dir".into(), d.clone()]).unwrap();
        assert!(!dir.join(".999999999.tmp").exists());
        // The right start time: listed.
        let start = start_time(me).unwrap();
        std::fs::write(
            dir.join(me.to_string()),
            SAMPLE
                .replace("pid 42", &format!("pid {me}"))
                .replace("start 99", &format!("start {start}")),
        )
        .unwrap();
        let out = run(&["--dir".into(), d.clone()]).unwrap();
        assert!(out.starts_with(&format!("pid {me} (curl)")), "{out}");
        let out = run(&[me.to_string(), "--dir".into(), d.clone()]).unwrap();
        assert!(out.contains("192.0.2.2:8000"), "{out}");
        // Written by another program before an exec: not this one's stack.
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let ours = SAMPLE
            .replace("pid 42", &format!("pid {me}"))
            .replace("start 99", &format!("start {start}"));
        for (written_by, listed) in [("/usr/bin/other", false), (exe.to_str().unwrap(), true)] {
            let text = ours.replace("comm curl\n", &format!("comm curl\nexe {written_by}\n"));
            std::fs::write(dir.join(me.to_string()), text).unwrap();
            let r = run(&[me.to_string(), "--dir".into(), d.clone()]);
            assert_eq!(r.is_ok(), listed, "{written_by}: {r:?}");
        }
        // Errors.
        let e = run(&["999999999".into(), "--dir".into(), d.clone()]).unwrap_err();
        assert_eq!(e, "no such process: 999999999");
        let e = run(&["1".into(), "--dir".into(), d.clone()]).unwrap_err();
        assert!(e.contains("pid 1 "), "{e}");
        assert!(run(&["x".into()]).unwrap_err().contains("not a process id"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
