//! `shunt`: the command-line face of shunt.

mod args;
mod netem;
mod run;
mod stat;

const USAGE_HEAD: &str = "\
usage: shunt <command> [options]

commands:
  netem IF1 IF2 [--loss P%] [--delay D --jitter J] [--reorder P%]
        [--duplicate P%] [--corrupt P%] [--rate R] [--seed N] [--pcap FILE]
        [--duration D] [--quiet]
      bridge two interfaces through the impairment app, both directions,
      with a report line a second; Ctrl-C or SIGTERM stops it";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = match argv.first().map(String::as_str) {
        Some("netem") => netem::main(&argv[1..]),
        Some("run") => run::main(&argv[1..]),
        Some("stat") => stat::main(&argv[1..]),
        Some("help" | "-h" | "--help") | None => {
            println!(
                "{USAGE_HEAD}\n{}\n{}\n  help  this text",
                run::USAGE,
                stat::USAGE
            );
            0
        }
        Some(other) => {
            eprintln!("shunt: unknown command {other:?} (try `shunt help`)");
            2
        }
    };
    std::process::exit(code);
}
