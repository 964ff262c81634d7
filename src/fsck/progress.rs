//! Progress reporting for `-C fd`: with fd 0 a bar on stdout, with another
//! descriptor one line per update, `pass current total device`, the format
//! fsck(8) and GUIs read from e2fsck.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct State {
    fd: i32,
    device: String,
    out: Option<std::fs::File>,
    last: Option<Instant>,
    last_pass: u32,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Starts reporting to descriptor `fd` for `device`.
pub fn start(fd: i32, device: &str) {
    let out = if fd > 0 {
        std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/dev/fd/{fd}"))
            .ok()
    } else {
        None
    };
    if let Ok(mut s) = STATE.lock() {
        *s = Some(State {
            fd,
            device: device.to_string(),
            out,
            last: None,
            last_pass: 0,
        });
    }
}

/// Weight of each pass in the whole run (percent), as e2fsck draws it.
const WEIGHTS: [f64; 6] = [0.0, 70.0, 20.0, 2.0, 5.0, 3.0];

/// Reports `cur` of `total` done in `pass` (1..=5).
pub fn report(pass: u32, cur: u64, total: u64) {
    let Ok(mut guard) = STATE.lock() else { return };
    let Some(st) = guard.as_mut() else { return };
    let now = Instant::now();
    let final_update = cur >= total;
    if st.last_pass == pass
        && !final_update
        && st
            .last
            .is_some_and(|t| now - t < Duration::from_millis(100))
    {
        return;
    }
    st.last = Some(now);
    st.last_pass = pass;
    if st.fd == 0 {
        let p = pass.min(5) as usize;
        let before: f64 = WEIGHTS[1..p].iter().sum();
        let frac = if total == 0 {
            1.0
        } else {
            cur as f64 / total as f64
        };
        let pct = (before + WEIGHTS[p] * frac.min(1.0)).min(100.0);
        let width = 40usize;
        let filled = ((pct / 100.0) * width as f64) as usize;
        let bar: String = "=".repeat(filled) + &" ".repeat(width - filled);
        let mut o = std::io::stdout();
        let _ = write!(o, "\r{}: |{}| {:5.1}%  ", st.device, bar, pct);
        if pct >= 100.0 {
            let _ = writeln!(o);
        }
        let _ = o.flush();
    } else if let Some(f) = st.out.as_mut() {
        let _ = writeln!(f, "{pass} {cur} {total} {}", st.device);
    }
}

/// Clears the bar line.
pub fn finish() {
    let Ok(mut guard) = STATE.lock() else { return };
    if let Some(st) = guard.as_ref() {
        if st.fd == 0 {
            let mut o = std::io::stdout();
            let _ = write!(o, "\r{}\r", " ".repeat(st.device.len() + 52));
            let _ = o.flush();
        }
    }
    *guard = None;
}
