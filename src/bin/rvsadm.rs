//! rvsadm, the administration CLI for rvsd, speaking ipvsadm's language over the control socket.
//!
//! The control socket is not part of rvsd yet, so rvsadm only knows `--version` and `--help`;
//! any other argument is refused with a usage error rather than pretending to act.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "rvsadm",
    disable_version_flag = true,
    about = "rvs administration (ipvsadm-compatible)"
)]
struct Args {
    /// Print the rvs version and exit.
    #[arg(short = 'V', long)]
    version: bool,
}

fn main() {
    let args = Args::parse();
    if args.version {
        println!("{}", rvs::version_line("rvsadm"));
    } else {
        eprintln!("rvsadm: this build has no control socket yet; only --version and --help work.");
        std::process::exit(2);
    }
}
