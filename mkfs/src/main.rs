//! `mkfs.fext`: the command line of the image builder, with the options
//! users of mke2fs know. All the work is in `fext::mkfs`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use fext::mkfs::format::{make_filesystem, Progress};
use fext::mkfs::options::{parse_feature_edits, parse_size, parse_uuid, FsType, MkfsOptions};

#[derive(Parser, Debug)]
#[command(
    name = "mkfs.fext",
    bin_name = "mkfs.fext",
    version,
    about = "Create an ext2/ext3/ext4 file system in an image file or on a block device"
)]
struct Cli {
    /// File system type: ext2, ext3 or ext4
    #[arg(short = 't', value_name = "TYPE", default_value = "ext4")]
    fs_type: String,
    /// Block size in bytes (1024, 2048 or 4096)
    #[arg(short = 'b', value_name = "BLOCK_SIZE")]
    block_size: Option<u32>,
    /// Inode size in bytes (128, 256, ... up to the block size)
    #[arg(short = 'I', value_name = "INODE_SIZE")]
    inode_size: Option<u16>,
    /// Bytes per inode
    #[arg(short = 'i', value_name = "BYTES_PER_INODE")]
    inode_ratio: Option<u64>,
    /// Number of inodes
    #[arg(short = 'N', value_name = "INODES")]
    inodes: Option<u64>,
    /// Percentage of blocks reserved for the super-user
    #[arg(short = 'm', value_name = "PERCENT")]
    reserved_percent: Option<f64>,
    /// Volume label (at most 16 bytes)
    #[arg(short = 'L', value_name = "LABEL")]
    label: Option<String>,
    /// File system UUID (or "random", "time", "clear")
    #[arg(short = 'U', value_name = "UUID")]
    uuid: Option<String>,
    /// Features to set, or clear with a leading ^ (comma-separated)
    #[arg(short = 'O', value_name = "FEATURES")]
    features: Vec<String>,
    /// Journal options: size=MiB
    #[arg(short = 'J', value_name = "JOURNAL_OPTS")]
    journal: Option<String>,
    /// Extended options: root_owner=uid:gid, lazy_itable_init=, nodiscard, ...
    #[arg(short = 'E', value_name = "EXTENDED_OPTS")]
    extended: Vec<String>,
    /// Blocks per group
    #[arg(short = 'g', value_name = "BLOCKS_PER_GROUP")]
    blocks_per_group: Option<u32>,
    /// Groups per flex group
    #[arg(short = 'G', value_name = "FLEX_SIZE")]
    flex_size: Option<u32>,
    /// Copy this directory tree into the new file system
    #[arg(short = 'd', value_name = "ROOT_DIR")]
    source_dir: Option<PathBuf>,
    /// Force: overwrite an existing file system without asking
    #[arg(short = 'F', action = clap::ArgAction::Count)]
    force: u8,
    /// Quiet: print nothing but errors
    #[arg(short = 'q')]
    quiet: bool,
    /// The image file or block device
    device: PathBuf,
    /// Size (K, M, G, T suffixes; a plain number counts KiB, or blocks with -b)
    size: Option<String>,
}

/// Progress on stdout like mke2fs: step names, "done" at the end of each,
/// and on a terminal a live "groups done/total" counter while a step runs
/// (rewritten in place with backspaces). `-q` prints nothing but errors
/// and warnings, which go to stderr.
struct Console {
    quiet: bool,
    /// Whether stdout is a terminal: only then are counters shown.
    tty: bool,
    /// When the counter was last drawn, if it is on screen.
    last_count: Option<Instant>,
    /// Width of the counter on screen.
    count_width: usize,
    /// A step was announced and not finished (its line is open).
    in_step: bool,
}

/// Least time between two counter updates.
const COUNT_INTERVAL: Duration = Duration::from_millis(100);

impl Console {
    fn new(quiet: bool, tty: bool) -> Console {
        Console {
            quiet,
            tty,
            last_count: None,
            count_width: 0,
            in_step: false,
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        // A step that failed leaves its line open: end it, so the error
        // message starts on a line of its own.
        if self.in_step && !self.quiet {
            println!();
        }
    }
}

impl Progress for Console {
    fn step(&mut self, what: &str) {
        if !self.quiet {
            print!("{what}: ");
            let _ = std::io::stdout().flush();
        }
        self.in_step = true;
        self.last_count = None;
        self.count_width = 0;
    }
    fn count(&mut self, done: u64, total: u64) {
        if self.quiet || !self.tty {
            return;
        }
        // The first value, the last one, and at most ten a second between.
        if done < total
            && self
                .last_count
                .is_some_and(|t| t.elapsed() < COUNT_INTERVAL)
        {
            return;
        }
        let digits = total.to_string().len();
        let text = format!("{done:>digits$}/{total}");
        let back = "\u{8}".repeat(text.len());
        print!("{text}{back}");
        let _ = std::io::stdout().flush();
        self.last_count = Some(Instant::now());
        self.count_width = self.count_width.max(text.len());
    }
    fn done(&mut self) {
        if !self.quiet {
            // Overwrite a counter left on screen.
            let pad = " ".repeat(self.count_width.saturating_sub(4));
            println!("done{pad}");
        }
        self.in_step = false;
        self.last_count = None;
        self.count_width = 0;
    }
    fn info(&mut self, line: &str) {
        if !self.quiet {
            println!("{line}");
        }
    }
    fn warn(&mut self, line: &str) {
        eprintln!("mkfs.fext: warning: {line}");
    }
}

fn parse_extended(opts: &mut MkfsOptions, list: &[String]) -> Result<(), String> {
    for item in list
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
    {
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (item, None),
        };
        match (key, value) {
            ("root_owner", Some(v)) => {
                let (u, g) = v
                    .split_once(':')
                    .ok_or_else(|| format!("root_owner wants uid:gid, got '{v}'"))?;
                opts.root_uid = u.parse().map_err(|_| format!("invalid uid '{u}'"))?;
                opts.root_gid = g.parse().map_err(|_| format!("invalid gid '{g}'"))?;
                opts.root_owner_set = true;
            }
            ("root_owner", None) => {
                // SAFETY: getuid/getgid cannot fail.
                opts.root_uid = unsafe { libc::getuid() };
                opts.root_gid = unsafe { libc::getgid() };
                opts.root_owner_set = true;
            }
            // Accepted for compatibility: fext never needs them.
            ("lazy_itable_init" | "lazy_journal_init" | "assume_storage_prezeroed", _)
            | ("discard" | "nodiscard", None) => {}
            _ => return Err(format!("unknown extended option '{item}'")),
        }
    }
    Ok(())
}

fn parse_journal(opts: &mut MkfsOptions, spec: &str) -> Result<(), String> {
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        match item.split_once('=') {
            Some(("size", v)) => {
                opts.journal_size_mib = Some(
                    v.parse()
                        .map_err(|_| format!("invalid journal size '{v}'"))?,
                )
            }
            _ => return Err(format!("unknown journal option '{item}'")),
        }
    }
    Ok(())
}

fn existing_fs_type(path: &std::path::Path) -> Option<&'static str> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).ok()?;
    let mut sb = [0u8; 2];
    f.read_exact_at(&mut sb, 1024 + 0x38).ok()?;
    (u16::from_le_bytes(sb) == 0xEF53).then_some("ext2/ext3/ext4")
}

fn is_mounted(path: &std::path::Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(path) else {
        return false;
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return false;
    };
    mounts
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .any(|dev| std::fs::canonicalize(dev).is_ok_and(|d| d == canon))
}

fn run(cli: Cli) -> Result<(), String> {
    let mut opts = MkfsOptions {
        fs_type: FsType::parse(&cli.fs_type)?,
        block_size: cli.block_size,
        inode_size: cli.inode_size,
        inode_ratio: cli.inode_ratio,
        inodes_count: cli.inodes,
        reserved_percent: cli.reserved_percent.unwrap_or(5.0),
        label: cli.label.clone().unwrap_or_default(),
        blocks_per_group: cli.blocks_per_group,
        flex_bg_size: cli.flex_size,
        source_dir: cli.source_dir.clone(),
        quiet: cli.quiet,
        ..MkfsOptions::default()
    };
    if let Some(bs) = cli.block_size {
        if ![1024, 2048, 4096].contains(&bs) {
            return Err(format!("invalid block size {bs} (1024, 2048 or 4096)"));
        }
    }
    if let Some(u) = &cli.uuid {
        opts.uuid = parse_uuid(u)?;
    }
    for f in &cli.features {
        opts.feature_edits.extend(parse_feature_edits(f));
    }
    if let Some(j) = &cli.journal {
        parse_journal(&mut opts, j)?;
    }
    parse_extended(&mut opts, &cli.extended)?;
    let unit = cli.block_size.map_or(1024, u64::from);
    let size = cli
        .size
        .as_deref()
        .map(|s| parse_size(s, unit))
        .transpose()?;

    if is_mounted(&cli.device) {
        return Err(format!(
            "{} is mounted; will not make a file system here",
            cli.device.display()
        ));
    }
    if cli.force == 0 && std::io::stdin().is_terminal() {
        if let Some(kind) = existing_fs_type(&cli.device) {
            print!(
                "{} contains an {kind} file system\nProceed anyway? (y,N) ",
                cli.device.display()
            );
            let _ = std::io::stdout().flush();
            let mut answer = String::new();
            let _ = std::io::stdin().read_line(&mut answer);
            if !answer.trim_start().starts_with(['y', 'Y']) {
                return Err("cancelled".into());
            }
        }
    }
    let mut progress = Console::new(cli.quiet, std::io::stdout().is_terminal());
    make_filesystem(&cli.device, size, &opts, &mut progress)?;
    Ok(())
}

/// clap's message as one line: its first paragraph without the "error: "
/// prefix (e.g. "the following required arguments were not provided:
/// <DEVICE>").
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    let line = first.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            eprintln!("mkfs.fext: {} (see mkfs.fext --help)", one_line(&e));
            return ExitCode::from(1);
        }
        Err(e) => {
            // --help, --version: to stdout.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("mkfs.fext: {msg}");
            ExitCode::from(1)
        }
    }
}
