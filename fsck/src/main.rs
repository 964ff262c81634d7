//! `fsck.fext`: the command line of the checker. All the work is in
//! `fext::fsck`; this parses the options fsck(8) and e2fsck users know and
//! maps errors to fsck(8)'s exit codes (16 for usage errors).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use fext::fsck::problem::Mode;
use fext::fsck::{exit, run, Options};

#[derive(Parser, Debug)]
#[command(
    name = "fsck.fext",
    version,
    about = "Check and repair an ext2/ext3/ext4 file system",
    after_help = "Exit codes: 0 clean, 1 errors corrected, 4 errors left uncorrected, \
                  8 operational error, 16 usage error, 32 cancelled."
)]
struct Cli {
    /// Open read-only and answer "no" to every question
    #[arg(short = 'n')]
    no: bool,
    /// Repair automatically what is safe to repair ("preen")
    #[arg(short = 'p')]
    preen: bool,
    /// Same as -p
    #[arg(short = 'a')]
    auto: bool,
    /// Answer "yes" to every question
    #[arg(short = 'y')]
    yes: bool,
    /// Check even if the file system seems clean
    #[arg(short = 'f')]
    force: bool,
    /// Report progress to file descriptor FD (0: a bar on stdout)
    #[arg(short = 'C', value_name = "FD")]
    progress: Option<i32>,
    /// Verbose statistics at the end
    #[arg(short = 'v')]
    verbose: bool,
    /// Worker threads for pass 1 (default: up to 2)
    #[arg(long = "threads", value_name = "N")]
    threads: Option<usize>,
    /// The image file or block device
    device: PathBuf,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => exit::USAGE,
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let chosen = [cli.no, cli.preen || cli.auto, cli.yes]
        .iter()
        .filter(|&&b| b)
        .count();
    if chosen > 1 {
        eprintln!("fsck.fext: only one of the options -p/-a, -n or -y may be specified.");
        return ExitCode::from(exit::USAGE as u8);
    }
    let mut no_tty_note = false;
    let mode = if cli.no {
        Mode::No
    } else if cli.preen || cli.auto {
        Mode::Preen
    } else if cli.yes {
        Mode::Yes
    } else if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        Mode::Ask
    } else {
        no_tty_note = true;
        Mode::No
    };
    if let Some(fd) = cli.progress {
        if fd < 0 {
            eprintln!("fsck.fext: invalid progress file descriptor {fd}");
            return ExitCode::from(exit::USAGE as u8);
        }
    }
    let mut opts = Options::new(cli.device, mode);
    opts.force = cli.force;
    opts.progress_fd = cli.progress;
    opts.verbose = cli.verbose;
    opts.threads = cli.threads.unwrap_or(0);
    opts.no_tty_note = no_tty_note;
    let code = run(&opts, Box::new(std::io::stdout()));
    ExitCode::from(u8::try_from(code).unwrap_or(exit::ERROR as u8))
}
