//! Running external programs from tests, always with a time limit.
//!
//! Every child runs in its own process group with stdin from `/dev/null`
//! (unless input is given) and `LC_ALL=C`, so output is stable and a child
//! can never wait on a terminal. On timeout the whole group is killed with
//! SIGKILL, the partial output is kept, and [`Output::timed_out`] is set
//! (exit code 124, like `timeout(1)` and the corpus' VERDICTS.tsv).
//!
//! Programs named without a `/` are looked up in `PATH` and then in
//! `/usr/sbin` and `/sbin`, where e2fsprogs lives on Debian but which a
//! non-root `PATH` often lacks.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Time limit of [`run`], [`run_ok`] and a fresh [`Cmd`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Exit code reported when a command hit its time limit.
pub const TIMEOUT_CODE: i32 = 124;

/// How long to wait for the output pipes to close after the child is gone
/// (a grandchild that escaped the process group may hold them open).
const PIPE_DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// What a finished (or killed) command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit code; `128 + signal` if killed by a signal; [`TIMEOUT_CODE`] on timeout.
    pub code: i32,
    /// True when the time limit was hit and the process group was killed.
    pub timed_out: bool,
    /// Standard output (lossy UTF-8); empty when redirected with [`Cmd::stdout_to`].
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
    /// Wall time the command took.
    pub elapsed: Duration,
}

impl Output {
    /// Exit code 0 and no timeout.
    pub fn success(&self) -> bool {
        self.code == 0 && !self.timed_out
    }

    /// Standard output followed by standard error.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "$ {}\n(exit code {}{}, {:.1?})",
            self.cmdline,
            self.code,
            if self.timed_out { ", TIMED OUT" } else { "" },
            self.elapsed
        )?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// A command to run: a small builder over [`std::process::Command`].
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    stdout_file: Option<PathBuf>,
    timeout: Duration,
}

impl Cmd {
    /// A command running `program` with no arguments and [`DEFAULT_TIMEOUT`].
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            cwd: None,
            stdin: None,
            stdout_file: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Append one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Append arguments.
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Set an environment variable for the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Run in this directory.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Feed these bytes to the child's standard input.
    pub fn stdin_bytes(mut self, input: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(input.into());
        self
    }

    /// Send standard output to this file (created or truncated) instead of
    /// capturing it.
    pub fn stdout_to(mut self, path: impl AsRef<Path>) -> Cmd {
        self.stdout_file = Some(path.as_ref().to_owned());
        self
    }

    /// Change the time limit.
    pub fn timeout(mut self, limit: Duration) -> Cmd {
        self.timeout = limit;
        self
    }

    /// The command line as a shell-like string, for messages.
    pub fn cmdline(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for a in &self.args {
            s.push(' ');
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                s.push_str(&format!("'{}'", a.replace('\'', "'\\''")));
            } else {
                s.push_str(&a);
            }
        }
        s
    }

    /// Run to completion or timeout. Panics only if the program cannot be
    /// started at all; a timeout is reported in the returned [`Output`].
    pub fn output(&self) -> Output {
        let cmdline = self.cmdline();
        let program = find_program(&self.program);
        let mut command = Command::new(&program);
        command
            .args(&self.args)
            .env("LC_ALL", "C")
            .process_group(0)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped());
        for (k, v) in &self.envs {
            command.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        match &self.stdout_file {
            Some(path) => {
                let file = File::create(path)
                    .unwrap_or_else(|e| panic!("{cmdline}: cannot create {}: {e}", path.display()));
                command.stdout(file);
            }
            None => {
                command.stdout(Stdio::piped());
            }
        }

        let start = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{cmdline}` ({}): {e}", program.display()));

        if let Some(input) = self.stdin.clone() {
            let mut pipe = child.stdin.take().expect("stdin was piped");
            // A child that exits without reading its input makes this fail
            // with EPIPE: that is the child's business, not an error here.
            thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        let out_rx = child.stdout.take().map(spawn_reader);
        let err_rx = child.stderr.take().map(spawn_reader);

        let (status, timed_out) = wait_with_deadline(&mut child, start + self.timeout);
        let drain_deadline = Instant::now() + PIPE_DRAIN_LIMIT;
        let stdout = collect(out_rx, drain_deadline);
        let stderr = collect(err_rx, drain_deadline);
        let code = if timed_out {
            TIMEOUT_CODE
        } else if let Some(c) = status.code() {
            c
        } else {
            128 + status.signal().unwrap_or(0)
        };
        Output {
            cmdline,
            code,
            timed_out,
            stdout,
            stderr,
            elapsed: start.elapsed(),
        }
    }

    /// Run; panic (printing the output) if the time limit was hit.
    pub fn run(&self) -> Output {
        let out = self.output();
        assert!(
            !out.timed_out,
            "command timed out after {:?}:\n{out}",
            self.timeout
        );
        out
    }

    /// Run; panic (printing the output) unless it exited 0 in time.
    pub fn run_ok(&self) -> Output {
        let out = self.run();
        assert!(out.success(), "command failed:\n{out}");
        out
    }
}

/// Run `program args...` with [`DEFAULT_TIMEOUT`]; panic on timeout. The
/// exit code is not checked: see [`Output::code`].
pub fn run<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> Output {
    Cmd::new(program).args(args).run()
}

/// Run `program args...` with [`DEFAULT_TIMEOUT`]; panic with its output
/// unless it exits 0.
pub fn run_ok<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> Output {
    Cmd::new(program).args(args).run_ok()
}

/// Whether `program` can be found (see the module notes on lookup).
pub fn have_program(program: &str) -> bool {
    find_program(OsStr::new(program)).is_absolute()
}

/// Resolve a bare program name through `PATH`, then `/usr/sbin`, `/sbin`.
/// Names with a `/`, and names not found, are returned unchanged.
pub fn find_program(program: &OsStr) -> PathBuf {
    let as_path = Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        return as_path.to_owned();
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let extra = [PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")];
    for dir in std::env::split_paths(&path_var).chain(extra) {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    as_path.to_owned()
}

fn spawn_reader(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn collect(rx: Option<mpsc::Receiver<Vec<u8>>>, deadline: Instant) -> String {
    let Some(rx) = rx else {
        return String::new();
    };
    let left = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(left) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => "<output pipe still held open by a leftover process; not collected>".into(),
    }
}

/// Poll `child` until it exits or `deadline` passes; on timeout SIGKILL its
/// process group, reap it, and report `timed_out = true`.
fn wait_with_deadline(child: &mut Child, deadline: Instant) -> (std::process::ExitStatus, bool) {
    let mut nap = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (status, false),
            Ok(None) => {}
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
        if Instant::now() >= deadline {
            kill_group(child.id(), libc::SIGKILL);
            let _ = child.kill();
            let status = child.wait().expect("reaping a killed child");
            return (status, true);
        }
        thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}

/// Send `signal` to the process group led by `pid` (children started by
/// [`Cmd`] and [`BgChild`] lead their own group).
fn kill_group(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals a process group; it
        // has no memory-safety preconditions.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

/// A long-running child (e.g. a FUSE daemon) that is stopped when dropped:
/// SIGTERM to its process group, then SIGKILL after a grace period, then
/// reaped. Its output goes to a log file read by [`BgChild::log`].
#[derive(Debug)]
pub struct BgChild {
    child: Option<Child>,
    cmdline: String,
    log_path: PathBuf,
    _log_dir: super::TempDir,
}

/// Grace period between SIGTERM and SIGKILL when a [`BgChild`] is stopped.
pub const BG_STOP_GRACE: Duration = Duration::from_secs(10);

impl BgChild {
    /// Start `cmd` in the background (its timeout is ignored: a background
    /// child lives until [`BgChild::stop`] or drop). stdout and stderr go
    /// to one log file.
    pub fn spawn(cmd: &Cmd) -> BgChild {
        let log_dir = super::TempDir::new("bg-log");
        let log_path = log_dir.path().join("output.log");
        let log = File::create(&log_path).expect("create log file");
        let log2 = log.try_clone().expect("dup log file");
        let program = find_program(&cmd.program);
        let mut command = Command::new(&program);
        command
            .args(&cmd.args)
            .env("LC_ALL", "C")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (k, v) in &cmd.envs {
            command.env(k, v);
        }
        if let Some(dir) = &cmd.cwd {
            command.current_dir(dir);
        }
        let cmdline = cmd.cmdline();
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{cmdline}`: {e}"));
        BgChild {
            child: Some(child),
            cmdline,
            log_path,
            _log_dir: log_dir,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Everything the child wrote so far (stdout and stderr interleaved).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// The exit code if the child has exited already (128 + signal if killed).
    pub fn try_exit_code(&mut self) -> Option<i32> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().ok()??;
        Some(status.code().unwrap_or(128 + status.signal().unwrap_or(0)))
    }

    /// Send a signal to the child's process group (e.g. SIGKILL for crash tests).
    pub fn signal(&self, signal: libc::c_int) {
        if self.child.is_some() {
            kill_group(self.pid(), signal);
        }
    }

    /// Wait up to `limit` for the child to exit on its own; its exit code,
    /// or `None` if still running.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(code) = self.try_exit_code() {
                return Some(code);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop it (SIGTERM, then SIGKILL after [`BG_STOP_GRACE`]) and return
    /// its exit code (128 + signal if it died of one).
    pub fn stop(mut self) -> i32 {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> i32 {
        let Some(mut child) = self.child.take() else {
            return -1;
        };
        if let Ok(Some(status)) = child.try_wait() {
            return status.code().unwrap_or(128 + status.signal().unwrap_or(0));
        }
        kill_group(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + BG_STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    return status.code().unwrap_or(128 + status.signal().unwrap_or(0))
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    eprintln!(
                        "BgChild: `{}` ignored SIGTERM for {BG_STOP_GRACE:?}; killing it",
                        self.cmdline
                    );
                    kill_group(child.id(), libc::SIGKILL);
                    let _ = child.kill();
                    return match child.wait() {
                        Ok(status) => status.code().unwrap_or(128 + status.signal().unwrap_or(0)),
                        Err(_) => -1,
                    };
                }
            }
        }
    }
}

impl Drop for BgChild {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Poll `condition` every `interval` until it holds or `limit` passes;
/// whether it held.
pub fn wait_until(
    limit: Duration,
    interval: Duration,
    mut condition: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(interval);
    }
}
