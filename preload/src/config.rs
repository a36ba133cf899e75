//! The `SHUNT_*` environment (DESIGN.md, Configuration), parsed by a pure
//! function: the caller hands over the variables, the parser never reads
//! the environment. The first error found is returned as one line of text;
//! the caller prints it as `shunt: <error>` and runs the program on the
//! kernel.

use std::fmt;
use std::net::IpAddr;

use shunt_ring::apps::impair::ImpairConfig;

/// Every variable the shim reads. Any other `SHUNT_*` variable is a
/// configuration error (a typo must not silently run on the kernel).
pub const KNOWN: &[&str] = &[
    "SHUNT_IFACE",
    "SHUNT_ADDR",
    "SHUNT_GW",
    "SHUNT_BACKEND",
    "SHUNT_SHARE_ADDR",
    "SHUNT_SPIN_US",
    "SHUNT_PCAP",
    "SHUNT_NETEM",
    "SHUNT_LOG",
];

/// Largest accepted `SHUNT_SPIN_US`: one second of busy polling per call.
pub const MAX_SPIN_US: u32 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn parse(s: &str) -> Result<LogLevel, String> {
        Ok(match s {
            "off" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            _ => {
                return Err(format!(
                    "SHUNT_LOG={s:?}: expected off, error, warn, info or debug"
                ));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Packet,
    Xdp,
}

/// An interface address with its prefix (`192.0.2.1/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// `ADDR/PREFIX`, or a bare address as a host route (/32, /128), like
    /// `ip addr add`. Refuses addresses an interface cannot own.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(v) if v <= max && !p.starts_with('+') => v,
                _ => return Err(format!("{s:?}: prefix length must be 0..={max}")),
            },
        };
        if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
            return Err(format!(
                "{s:?}: an unspecified, multicast or loopback address cannot be an interface address"
            ));
        }
        if matches!(addr, IpAddr::V4(v4) if v4.is_broadcast()) {
            return Err(format!(
                "{s:?}: the broadcast address cannot be an interface address"
            ));
        }
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is on this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A complete, validated configuration: shunt is to own `iface`.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub iface: String,
    pub addrs: Vec<Cidr>,
    /// At most one default gateway per family.
    pub gateways: Vec<IpAddr>,
    pub backend: Backend,
    /// `SHUNT_SHARE_ADDR=1` (AF_XDP only): shunt serves the kernel's own
    /// addresses on the interface, steered by (protocol, local port); each
    /// port shunt uses is held by a bound kernel socket and neighbours come
    /// from the kernel's table (crate::shared). `addrs` (and `gateways`)
    /// may then be empty: the kernel's are used (crate::init).
    pub share_addr: bool,
    pub spin_us: u32,
    pub pcap: Option<String>,
    pub netem: Option<ImpairConfig>,
    pub log: LogLevel,
}

/// What the environment asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// No `SHUNT_IFACE` (and no other setting but `SHUNT_LOG`): the shim
    /// is loaded but serves nothing; every call goes to the kernel.
    Inactive {
        log: LogLevel,
    },
    Active(Config),
}

impl Parsed {
    pub fn log(&self) -> LogLevel {
        match self {
            Parsed::Inactive { log } => *log,
            Parsed::Active(c) => c.log,
        }
    }
}

/// A configuration error: one line, and the log level to print it at
/// (`SHUNT_LOG=off` silences even errors).
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    pub message: String,
    pub log: LogLevel,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Linux's `dev_valid_name`: 1..=15 bytes, not `.` or `..`, no `/`, `:`
/// or white space.
pub fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 16
        && s != "."
        && s != ".."
        && !s
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

/// Parse the environment's `SHUNT_*` variables, given as (name, value)
/// pairs in any order (other variables are ignored). Pure: no I/O.
pub fn parse<'a, I>(vars: I) -> Result<Parsed, ConfigError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (k, v) in vars {
        if k.starts_with("SHUNT_") {
            // The last assignment wins, as with getenv on a duplicated name
            // (glibc returns the first; the environment rarely has both).
            seen.retain(|(n, _)| *n != k);
            seen.push((k, v));
        }
    }
    let get = |name: &str| seen.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);

    // The log level first, so later errors know whether to be printed.
    let log = match get("SHUNT_LOG") {
        None | Some("") => LogLevel::Warn,
        Some(s) => LogLevel::parse(s).map_err(|message| ConfigError {
            message,
            log: LogLevel::Warn,
        })?,
    };
    let err = |message: String| ConfigError { message, log };

    if let Some((k, _)) = seen.iter().find(|(k, _)| !KNOWN.contains(k)) {
        return Err(err(format!(
            "unknown variable {k} (known: {})",
            KNOWN.join(", ")
        )));
    }

    let iface = match get("SHUNT_IFACE") {
        None | Some("") => {
            if let Some((k, _)) = seen
                .iter()
                .find(|(k, v)| *k != "SHUNT_LOG" && !v.is_empty())
            {
                return Err(err(format!(
                    "{k} is set but SHUNT_IFACE is not (shunt needs the interface to own)"
                )));
            }
            return Ok(Parsed::Inactive { log });
        }
        Some(s) if !valid_ifname(s) => {
            return Err(err(format!(
                "SHUNT_IFACE={s:?} is not a valid interface name"
            )));
        }
        Some(s) => s.to_string(),
    };

    let mut addrs: Vec<Cidr> = Vec::new();
    let addr_spec = get("SHUNT_ADDR").unwrap_or("");
    for item in addr_spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let c = Cidr::parse(item).map_err(|e| err(format!("SHUNT_ADDR: {e}")))?;
        if addrs.iter().any(|a| a.addr == c.addr) {
            return Err(err(format!("SHUNT_ADDR: {} is given twice", c.addr)));
        }
        addrs.push(c);
    }
    let share_addr = match get("SHUNT_SHARE_ADDR") {
        None | Some("") | Some("0") => false,
        Some("1") => true,
        Some(s) => return Err(err(format!("SHUNT_SHARE_ADDR={s:?}: expected 0 or 1"))),
    };
    if addrs.is_empty() && !share_addr {
        return Err(err(format!(
            "SHUNT_IFACE={iface} needs SHUNT_ADDR (e.g. SHUNT_ADDR=192.0.2.1/24,2001:db8::1/64)"
        )));
    }

    let mut gateways: Vec<IpAddr> = Vec::new();
    for item in get("SHUNT_GW")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let gw: IpAddr = item
            .parse()
            .map_err(|_| err(format!("SHUNT_GW: {item:?} is not an IPv4 or IPv6 address")))?;
        if gw.is_unspecified() || gw.is_multicast() || gw.is_loopback() {
            return Err(err(format!("SHUNT_GW: {gw} cannot be a gateway")));
        }
        if gateways.iter().any(|g| g.is_ipv4() == gw.is_ipv4()) {
            return Err(err(format!(
                "SHUNT_GW: more than one IPv{} gateway",
                if gw.is_ipv4() { 4 } else { 6 }
            )));
        }
        let link_local6 = matches!(gw, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
        if !link_local6 && !addrs.iter().any(|a| a.contains(gw)) {
            return Err(err(format!(
                "SHUNT_GW: {gw} is not on the prefix of any SHUNT_ADDR address"
            )));
        }
        if addrs.iter().any(|a| a.addr == gw) {
            return Err(err(format!("SHUNT_GW: {gw} is one of our own addresses")));
        }
        gateways.push(gw);
    }

    let backend = match get("SHUNT_BACKEND") {
        None | Some("") | Some("packet") => Backend::Packet,
        Some("xdp") => Backend::Xdp,
        Some(s) => return Err(err(format!("SHUNT_BACKEND={s:?}: expected packet or xdp"))),
    };
    if share_addr && backend != Backend::Xdp {
        return Err(err(
            "SHUNT_SHARE_ADDR=1 needs SHUNT_BACKEND=xdp (AF_PACKET cannot leave the kernel its frames)".into(),
        ));
    }

    let spin_us = match get("SHUNT_SPIN_US") {
        None | Some("") => 0,
        Some(s) => match s.parse::<u32>() {
            Ok(v) if v <= MAX_SPIN_US && !s.starts_with('+') => v,
            _ => {
                return Err(err(format!(
                    "SHUNT_SPIN_US={s:?}: expected microseconds, 0..={MAX_SPIN_US}"
                )));
            }
        },
    };

    let pcap = match get("SHUNT_PCAP") {
        None | Some("") => None,
        Some(s) => Some(s.to_string()),
    };

    let netem = match get("SHUNT_NETEM") {
        None => None,
        Some(s) if s.trim().is_empty() => None,
        Some(s) => Some(ImpairConfig::parse(s).map_err(|e| err(format!("SHUNT_NETEM: {e}")))?),
    };

    Ok(Parsed::Active(Config {
        iface,
        addrs,
        gateways,
        backend,
        share_addr,
        spin_us,
        pcap,
        netem,
        log,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(vars: &[(&str, &str)]) -> Result<Parsed, ConfigError> {
        parse(vars.iter().copied())
    }

    fn active(vars: &[(&str, &str)]) -> Config {
        match p(vars) {
            Ok(Parsed::Active(c)) => c,
            other => panic!("expected an active config, got {other:?}"),
        }
    }

    fn error(vars: &[(&str, &str)]) -> String {
        match p(vars) {
            Err(e) => {
                assert!(!e.message.contains('\n'), "one line: {e}");
                e.message
            }
            Ok(c) => panic!("expected an error, got {c:?}"),
        }
    }

    #[test]
    fn nothing_set_is_inactive() {
        assert_eq!(
            p(&[]),
            Ok(Parsed::Inactive {
                log: LogLevel::Warn
            })
        );
        assert_eq!(
            p(&[("PATH", "/bin"), ("SHUNT_LOG", "debug")]),
            Ok(Parsed::Inactive {
                log: LogLevel::Debug
            })
        );
        // Empty values count as unset.
        assert_eq!(
            p(&[("SHUNT_IFACE", ""), ("SHUNT_ADDR", "")]),
            Ok(Parsed::Inactive {
                log: LogLevel::Warn
            })
        );
    }

    #[test]
    fn full_design_example() {
        let c = active(&[
            ("SHUNT_IFACE", "veth0"),
            ("SHUNT_ADDR", "192.0.2.1/24,2001:db8::1/64"),
            ("SHUNT_GW", "192.0.2.254,2001:db8::fe"),
            ("SHUNT_BACKEND", "xdp"),
            ("SHUNT_SPIN_US", "50"),
            ("SHUNT_PCAP", "/tmp/x.pcap"),
            (
                "SHUNT_NETEM",
                "loss=1%,delay=20ms,jitter=5ms,reorder=2%,seed=7",
            ),
            ("SHUNT_LOG", "info"),
        ]);
        assert_eq!(c.iface, "veth0");
        assert_eq!(
            c.addrs,
            [
                Cidr {
                    addr: "192.0.2.1".parse().unwrap(),
                    prefix: 24
                },
                Cidr {
                    addr: "2001:db8::1".parse().unwrap(),
                    prefix: 64
                }
            ]
        );
        assert_eq!(c.gateways.len(), 2);
        assert_eq!(c.backend, Backend::Xdp);
        assert_eq!(c.spin_us, 50);
        assert_eq!(c.pcap.as_deref(), Some("/tmp/x.pcap"));
        let n = c.netem.expect("netem");
        assert_eq!(n.seed, 7);
        assert!((n.loss - 0.01).abs() < 1e-12);
        assert_eq!(c.log, LogLevel::Info);
    }

    #[test]
    fn defaults() {
        let c = active(&[("SHUNT_IFACE", "eth0"), ("SHUNT_ADDR", " 192.0.2.1/24 ")]);
        assert_eq!(c.backend, Backend::Packet);
        assert_eq!(c.spin_us, 0);
        assert_eq!(c.pcap, None);
        assert_eq!(c.netem, None);
        assert_eq!(c.log, LogLevel::Warn);
        assert!(c.gateways.is_empty());
        // A bare address is a host address, as with `ip addr add`.
        let c = active(&[("SHUNT_IFACE", "eth0"), ("SHUNT_ADDR", "2001:db8::5")]);
        assert_eq!(c.addrs[0].prefix, 128);
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        let base = [("SHUNT_IFACE", "veth0"), ("SHUNT_ADDR", "192.0.2.1/24")];
        let with = |k: &'static str, v: &'static str| {
            let mut e: Vec<(&str, &str)> = base.to_vec();
            e.push((k, v));
            error(&e)
        };
        assert!(with("SHUNT_ADDR", "garbage").contains("SHUNT_ADDR"));
        assert!(with("SHUNT_ADDR", "192.0.2.1/33").contains("prefix"));
        assert!(with("SHUNT_ADDR", "192.0.2.1/-1").contains("prefix"));
        assert!(with("SHUNT_ADDR", "2001:db8::1/129").contains("prefix"));
        assert!(with("SHUNT_ADDR", "0.0.0.0/0").contains("unspecified"));
        assert!(with("SHUNT_ADDR", "127.0.0.1/8").contains("loopback"));
        assert!(with("SHUNT_ADDR", "224.0.0.1/4").contains("multicast"));
        assert!(with("SHUNT_ADDR", "255.255.255.255/32").contains("broadcast"));
        assert!(with("SHUNT_ADDR", "192.0.2.1/24,192.0.2.1/25").contains("twice"));
        assert!(with("SHUNT_ADDR", ",").contains("needs SHUNT_ADDR"));
        assert!(with("SHUNT_GW", "192.0.2.300").contains("SHUNT_GW"));
        assert!(with("SHUNT_GW", "198.51.100.1").contains("prefix"));
        assert!(with("SHUNT_GW", "192.0.2.1").contains("own"));
        assert!(with("SHUNT_GW", "192.0.2.2,192.0.2.3").contains("more than one"));
        assert!(with("SHUNT_GW", "2001:db8::fe").contains("prefix"));
        assert!(with("SHUNT_BACKEND", "dpdk").contains("packet or xdp"));
        assert!(with("SHUNT_SPIN_US", "-1").contains("SHUNT_SPIN_US"));
        assert!(with("SHUNT_SPIN_US", "+5").contains("SHUNT_SPIN_US"));
        assert!(with("SHUNT_SPIN_US", "2000000").contains("SHUNT_SPIN_US"));
        assert!(with("SHUNT_NETEM", "loss=").contains("SHUNT_NETEM"));
        assert!(with("SHUNT_NETEM", "delay=1ms,jitter=5ms").contains("jitter"));
        assert!(with("SHUNT_NETEM", "bogus=1").contains("SHUNT_NETEM"));
        assert!(with("SHUNT_LOG", "loud").contains("SHUNT_LOG"));
        assert!(with("SHUNT_ADRR", "x").contains("unknown variable SHUNT_ADRR"));
    }

    #[test]
    fn interface_rules() {
        assert!(
            error(&[("SHUNT_IFACE", "a/b"), ("SHUNT_ADDR", "192.0.2.1")]).contains("SHUNT_IFACE")
        );
        assert!(
            error(&[
                ("SHUNT_IFACE", "sixteen-chars-xx"),
                ("SHUNT_ADDR", "192.0.2.1")
            ])
            .contains("SHUNT_IFACE")
        );
        assert!(error(&[("SHUNT_IFACE", "veth0")]).contains("needs SHUNT_ADDR"));
        // Settings without an interface: a mistake worth a line, not silence.
        assert!(error(&[("SHUNT_ADDR", "192.0.2.1/24")]).contains("SHUNT_IFACE is not"));
        assert!(valid_ifname("veth0"));
        assert!(valid_ifname("fifteen-chars-x"));
        assert!(!valid_ifname(".."));
        assert!(!valid_ifname("a b"));
        assert!(!valid_ifname("a:1"));
    }

    #[test]
    fn log_level_of_errors() {
        let e = p(&[("SHUNT_LOG", "off"), ("SHUNT_ADDR", "garbage")]).unwrap_err();
        assert_eq!(e.log, LogLevel::Off);
        let e = p(&[("SHUNT_LOG", "nope")]).unwrap_err();
        assert_eq!(e.log, LogLevel::Warn);
        assert!(LogLevel::Debug > LogLevel::Warn && LogLevel::Off < LogLevel::Error);
        for l in ["off", "error", "warn", "info", "debug"] {
            assert_eq!(LogLevel::parse(l).unwrap().name(), l);
        }
    }

    #[test]
    fn link_local_v6_gateway_is_on_link() {
        let c = active(&[
            ("SHUNT_IFACE", "veth0"),
            ("SHUNT_ADDR", "2001:db8::1/64"),
            ("SHUNT_GW", "fe80::1"),
        ]);
        assert_eq!(c.gateways, ["fe80::1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn cidr_contains() {
        let c = Cidr::parse("192.0.2.1/24").unwrap();
        assert!(c.contains("192.0.2.200".parse().unwrap()));
        assert!(!c.contains("192.0.3.1".parse().unwrap()));
        assert!(!c.contains("2001:db8::1".parse().unwrap()));
        let all = Cidr::parse("192.0.2.1/0").unwrap();
        assert!(all.contains("10.0.0.1".parse().unwrap()));
        let c6 = Cidr::parse("2001:db8::1/64").unwrap();
        assert!(c6.contains("2001:db8::ffff".parse().unwrap()));
        assert!(!c6.contains("2001:db9::1".parse().unwrap()));
        assert_eq!(c6.to_string(), "2001:db8::1/64");
    }
}
