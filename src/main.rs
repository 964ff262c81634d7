//! `fext IMAGE MOUNTPOINT [-o opt,...] [-f]`: mount an ext2/3/4 image
//! through FUSE. All the work is in the library (`fext::daemon`). Run as
//! `umount.fuse.fext` (a link), it is umount(8)'s helper that waits for
//! the daemon's final write-back.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use fext::daemon::{options::parse_options, run, Invocation};

#[derive(Parser, Debug)]
#[command(
    name = "fext",
    version,
    about = "Mount an ext2/ext3/ext4 image through FUSE"
)]
struct Cli {
    /// Mount options: ro, rw, allow_other, default_permissions, noatime,
    /// relatime, dev, nodev, suid, nosuid, fsname=, subtype=, sync, force,
    /// dirty_background_mb=, dirty_limit_mb=, dirty_expire_ms=, threads=,
    /// writeback_cache, stats
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
    /// Stay in the foreground
    #[arg(short = 'f')]
    foreground: bool,
    /// Accepted for mount(8), which passes them to mount helpers
    /// (no mtab, sloppy options, verbose): ignored
    #[arg(short = 'n', hide = true)]
    _no_mtab: bool,
    #[arg(short = 's', hide = true)]
    _sloppy: bool,
    #[arg(short = 'v', hide = true)]
    _verbose: bool,
    /// The image file or block device
    image: PathBuf,
    /// Where to mount it
    mountpoint: PathBuf,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    // Installed as umount(8)'s helper for the type fuse.fext.
    let mut args = std::env::args_os();
    let argv0 = args.next().map(PathBuf::from).unwrap_or_default();
    if argv0
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("umount."))
    {
        let rest: Vec<_> = args.collect();
        let code = fext::daemon::umount_helper::main(&rest);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let options = match parse_options(&cli.options) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("fext: {msg}");
            return ExitCode::from(2);
        }
    };
    let code = run(Invocation {
        image: cli.image,
        mountpoint: cli.mountpoint,
        options,
        foreground: cli.foreground,
    });
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
