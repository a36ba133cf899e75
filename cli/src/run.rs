//! `shunt run [options] -- PROG ARGS`: run a program over shunt. Sets the
//! `SHUNT_*` environment of DESIGN.md (each flag maps onto one variable;
//! a flag overrides the variable inherited from the caller), puts
//! libshunt.so in front of LD_PRELOAD and execs PROG in place, so PROG
//! keeps this process's pid, stdio and signals.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::args;

/// libshunt.so's own `SHUNT_*` parser (a pure module), compiled into the
/// CLI rather than linked from the shunt-preload rlib, which would bring
/// the hooks (and their constructor) into this binary.
#[path = "../../preload/src/config.rs"]
#[allow(dead_code)]
mod config;

/// Flag, variable, and what the value must look like.
const FLAGS: &[(&str, &str)] = &[
    ("iface", "SHUNT_IFACE"),
    ("addr", "SHUNT_ADDR"),
    ("gw", "SHUNT_GW"),
    ("spin-us", "SHUNT_SPIN_US"),
    ("pcap", "SHUNT_PCAP"),
    ("netem", "SHUNT_NETEM"),
    ("backend", "SHUNT_BACKEND"),
    ("log", "SHUNT_LOG"),
];

/// Switches: the flag sets the variable to "1".
const SWITCHES: &[(&str, &str)] = &[("share-addr", "SHUNT_SHARE_ADDR")];

pub const USAGE: &str =
    "  run [--iface IF] [--addr CIDR,...] [--gw IP,...] [--spin-us N] [--pcap FILE]
      [--netem SPEC] [--backend packet|xdp] [--share-addr] [--log LEVEL]
      -- PROG [ARGS...]
      run PROG over shunt's stack on interface IF (flags set SHUNT_IFACE,
      SHUNT_ADDR, ... of the same name; unset flags keep the caller's
      SHUNT_* variables); --share-addr (with --backend xdp) serves the
      kernel's own addresses of IF, no --addr needed";

pub fn main(argv: &[String]) -> i32 {
    match run(argv, |k| std::env::var_os(k)) {
        Ok(mut cmd) => {
            // exec only returns on failure.
            let e = cmd.exec();
            eprintln!(
                "shunt run: cannot run {}: {e}",
                cmd.get_program().to_string_lossy()
            );
            if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            }
        }
        Err(e) => {
            eprintln!("shunt run: {e}");
            2
        }
    }
}

/// Everything up to the exec: parse, validate, build the command.
/// `getenv` reads the caller's environment (a parameter, for tests).
fn run(argv: &[String], getenv: impl Fn(&str) -> Option<OsString>) -> Result<Command, String> {
    let split = argv.iter().position(|a| a == "--");
    let (opts, prog) = match split {
        Some(i) => (&argv[..i], &argv[i + 1..]),
        None => (argv, &[][..]),
    };
    let valued: Vec<&str> = FLAGS.iter().map(|(f, _)| *f).collect();
    let switches: Vec<&str> = SWITCHES.iter().map(|(f, _)| *f).collect();
    let a = args::parse(opts, &valued, &switches)?;
    if let Some(p) = a.positional.first() {
        return Err(format!(
            "unexpected {p:?} before `--` (usage: shunt run [options] -- PROG [ARGS...])"
        ));
    }
    let Some((program, prog_args)) = prog.split_first() else {
        return Err("no program to run (usage: shunt run [options] -- PROG [ARGS...])".into());
    };

    // The environment PROG will see: the caller's SHUNT_* with our flags
    // on top. Validated by the very parser libshunt.so uses, so an error
    // shows here, once, instead of in every process.
    let mut env: Vec<(String, String)> = Vec::new();
    for (flag, var) in FLAGS {
        if let Some(v) = a.value(flag) {
            env.push((var.to_string(), v.to_string()));
        } else if let Some(v) = getenv(var) {
            let v = v
                .into_string()
                .map_err(|_| format!("{var} is not valid UTF-8"))?;
            env.push((var.to_string(), v));
        }
    }
    for (flag, var) in SWITCHES {
        if a.has(flag) {
            env.push((var.to_string(), "1".to_string()));
        } else if let Some(v) = getenv(var) {
            let v = v
                .into_string()
                .map_err(|_| format!("{var} is not valid UTF-8"))?;
            env.push((var.to_string(), v));
        }
    }
    match config::parse(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        Ok(config::Parsed::Active(_)) => {}
        Ok(config::Parsed::Inactive { .. }) => {
            return Err("no interface to own: give --iface IF (or set SHUNT_IFACE)".into());
        }
        Err(e) => return Err(flag_names(&e.message)),
    }

    let lib = find_libshunt(
        std::env::current_exe()
            .map_err(|e| format!("cannot find the shunt binary: {e}"))?
            .as_path(),
    )?;
    let preload = match getenv("LD_PRELOAD") {
        Some(old) if !old.is_empty() => {
            let mut v = OsString::from(lib.as_os_str());
            v.push(":");
            v.push(old);
            v
        }
        _ => lib.into_os_string(),
    };

    let mut cmd = Command::new(program);
    cmd.args(prog_args);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    cmd.env("LD_PRELOAD", preload);
    Ok(cmd)
}

/// Say `--addr` where the library's parser says `SHUNT_ADDR`.
fn flag_names(msg: &str) -> String {
    let mut out = msg.to_string();
    for (flag, var) in FLAGS {
        out = out.replace(&format!("{var}="), &format!("--{flag} "));
        out = out.replace(var, &format!("--{flag}"));
    }
    for (flag, var) in SWITCHES {
        out = out.replace(&format!("{var}=1"), &format!("--{flag}"));
        out = out.replace(var, &format!("--{flag}"));
    }
    out
}

/// libshunt.so beside the binary (target/release/shunt next to
/// target/release/libshunt.so), then `$PREFIX/lib/libshunt.so` for an
/// installed `$PREFIX/bin/shunt`.
fn find_libshunt(exe: &Path) -> Result<PathBuf, String> {
    let exe = exe.canonicalize().unwrap_or_else(|_| exe.to_path_buf());
    let dir = exe.parent().unwrap_or(Path::new("."));
    let mut tried = Vec::new();
    let mut candidates = vec![dir.join("libshunt.so")];
    if let Some(prefix) = dir.parent() {
        candidates.push(prefix.join("lib").join("libshunt.so"));
        // `cargo test` runs from target/<profile>/deps.
        candidates.push(prefix.join("libshunt.so"));
    }
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
        tried.push(c.display().to_string());
    }
    Err(format!(
        "cannot find libshunt.so (looked in {}); build it with `cargo build --release`",
        tried.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn env_of(cmd: &Command) -> Vec<(String, String)> {
        cmd.get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn flags_become_the_environment() {
        let cmd = run(
            &s(&[
                "--iface",
                "veth0",
                "--addr",
                "192.0.2.1/24,2001:db8::1/64",
                "--gw",
                "192.0.2.254",
                "--spin-us=50",
                "--pcap",
                "/tmp/x.pcap",
                "--netem",
                "loss=1%,seed=7",
                "--backend",
                "packet",
                "--log",
                "info",
                "--",
                "curl",
                "-s",
                "http://192.0.2.2/",
            ]),
            no_env,
        );
        let Ok(cmd) = cmd else {
            // Only when libshunt.so is not built; the message says so.
            let e = cmd.unwrap_err();
            assert!(e.contains("libshunt.so"), "{e}");
            return;
        };
        assert_eq!(cmd.get_program(), "curl");
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(args, ["-s", "http://192.0.2.2/"]);
        let env = env_of(&cmd);
        assert_eq!(get(&env, "SHUNT_IFACE"), Some("veth0"));
        assert_eq!(get(&env, "SHUNT_ADDR"), Some("192.0.2.1/24,2001:db8::1/64"));
        assert_eq!(get(&env, "SHUNT_GW"), Some("192.0.2.254"));
        assert_eq!(get(&env, "SHUNT_SPIN_US"), Some("50"));
        assert_eq!(get(&env, "SHUNT_PCAP"), Some("/tmp/x.pcap"));
        assert_eq!(get(&env, "SHUNT_NETEM"), Some("loss=1%,seed=7"));
        assert_eq!(get(&env, "SHUNT_BACKEND"), Some("packet"));
        assert_eq!(get(&env, "SHUNT_LOG"), Some("info"));
        assert!(get(&env, "LD_PRELOAD").unwrap().ends_with("libshunt.so"));
    }

    #[test]
    fn share_addr_switch_needs_no_addr_and_the_xdp_backend() {
        let Ok(cmd) = run(
            &s(&[
                "--iface",
                "veth0",
                "--backend",
                "xdp",
                "--share-addr",
                "--",
                "true",
            ]),
            no_env,
        ) else {
            return; // libshunt.so not built
        };
        let env = env_of(&cmd);
        assert_eq!(get(&env, "SHUNT_SHARE_ADDR"), Some("1"));
        assert_eq!(get(&env, "SHUNT_ADDR"), None);
        let e = run(
            &s(&["--iface", "veth0", "--share-addr", "--", "true"]),
            no_env,
        )
        .expect_err("AF_PACKET cannot share");
        assert!(e.starts_with("--share-addr needs --backend xdp"), "{e}");
        let e = run(&s(&["--iface", "veth0", "--", "true"]), no_env).expect_err("no address");
        assert!(e.contains("--addr"), "{e}");
    }

    #[test]
    fn inherited_variables_and_preload_chain() {
        let getenv = |k: &str| -> Option<OsString> {
            match k {
                "SHUNT_IFACE" => Some("eth9".into()),
                "SHUNT_ADDR" => Some("192.0.2.5/24".into()),
                "LD_PRELOAD" => Some("/other.so".into()),
                _ => None,
            }
        };
        let Ok(cmd) = run(&s(&["--iface", "veth1", "--", "true"]), getenv) else {
            return; // libshunt.so not built
        };
        let env = env_of(&cmd);
        assert_eq!(get(&env, "SHUNT_IFACE"), Some("veth1"), "the flag wins");
        assert_eq!(get(&env, "SHUNT_ADDR"), Some("192.0.2.5/24"));
        let pre = get(&env, "LD_PRELOAD").unwrap();
        assert!(pre.ends_with("libshunt.so:/other.so"), "{pre}");
    }

    #[test]
    fn errors_are_one_line_and_name_the_flag() {
        let err = |v: &[&str]| {
            let e = run(&s(v), no_env).expect_err("an error");
            assert!(!e.contains('\n'), "{e}");
            e
        };
        assert!(err(&["--iface", "veth0", "--addr", "192.0.2.1/24"]).contains("no program"));
        assert!(err(&["--iface", "veth0", "--addr", "192.0.2.1/24", "--"]).contains("no program"));
        assert!(err(&["--", "true"]).contains("--iface"));
        let e = err(&["--iface", "veth0", "--addr", "garbage", "--", "true"]);
        assert!(e.starts_with("--addr"), "{e}");
        let e = err(&[
            "--iface",
            "veth0",
            "--addr",
            "192.0.2.1/24",
            "--backend",
            "dpdk",
            "--",
            "x",
        ]);
        assert!(
            e.contains("--backend") && e.contains("packet or xdp"),
            "{e}"
        );
        let e = err(&[
            "--iface",
            "veth0",
            "--addr",
            "192.0.2.1/24",
            "--spin-us",
            "x",
            "--",
            "y",
        ]);
        assert!(e.contains("--spin-us"), "{e}");
        let e = err(&[
            "--iface",
            "veth0",
            "--addr",
            "192.0.2.1/24",
            "--netem",
            "loss=",
            "--",
            "y",
        ]);
        assert!(e.contains("--netem"), "{e}");
        let e = err(&[
            "--iface",
            "veth0",
            "--addr",
            "192.0.2.1/24",
            "--log",
            "loud",
            "--",
            "y",
        ]);
        assert!(e.contains("--log"), "{e}");
        assert!(err(&["--bogus", "1", "--", "true"]).contains("unknown option --bogus"));
        assert!(err(&["prog", "--", "true"]).contains("before `--`"));
        assert!(err(&["--iface"]).contains("needs a value"));
    }

    #[test]
    fn finds_the_library_beside_or_under_prefix() {
        let root = std::env::temp_dir().join(format!("shunt-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("lib")).unwrap();
        let exe = root.join("bin").join("shunt");
        std::fs::write(&exe, b"").unwrap();
        assert!(
            find_libshunt(&exe)
                .unwrap_err()
                .contains("cannot find libshunt.so")
        );
        std::fs::write(root.join("lib").join("libshunt.so"), b"").unwrap();
        assert!(find_libshunt(&exe).unwrap().ends_with("lib/libshunt.so"));
        std::fs::write(root.join("bin").join("libshunt.so"), b"").unwrap();
        assert!(find_libshunt(&exe).unwrap().ends_with("bin/libshunt.so"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
