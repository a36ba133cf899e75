//! A small argument scanner: positionals and `--flag VALUE` / `--flag=VALUE`
//! options, with one-line errors.

pub struct Args {
    pub positional: Vec<String>,
    pub options: Vec<(String, Option<String>)>,
}

/// Split `argv` given which options take a value and which are switches.
pub fn parse(argv: &[String], valued: &[&str], switches: &[&str]) -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if let Some(name) = a.strip_prefix("--") {
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (name, None),
            };
            if valued.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("--{name} needs a value"))?,
                };
                options.push((name.to_string(), Some(v)));
            } else if switches.contains(&name) {
                if inline.is_some() {
                    return Err(format!("--{name} takes no value"));
                }
                options.push((name.to_string(), None));
            } else {
                return Err(format!("unknown option --{name}"));
            }
        } else {
            positional.push(a.clone());
        }
    }
    Ok(Args {
        positional,
        options,
    })
}

impl Args {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn has(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn scans_positionals_values_and_switches() {
        let a = parse(
            &s(&["a", "--loss", "1%", "b", "--seed=3", "--quiet"]),
            &["loss", "seed"],
            &["quiet"],
        )
        .unwrap();
        assert_eq!(a.positional, ["a", "b"]);
        assert_eq!(a.value("loss"), Some("1%"));
        assert_eq!(a.value("seed"), Some("3"));
        assert!(a.has("quiet"));
        assert!(parse(&s(&["--loss"]), &["loss"], &[]).is_err());
        assert!(parse(&s(&["--bogus"]), &["loss"], &[]).is_err());
        assert!(parse(&s(&["--quiet=1"]), &[], &["quiet"]).is_err());
    }
}
