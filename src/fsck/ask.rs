//! Answering questions away from the reporter: pass 1 and pass 2 examine
//! inodes and directory blocks in worker threads, each recording its
//! questions with the answer the mode dictates ([`Recorder`]); the main
//! thread then replays the records through the [`Reporter`] in inode order,
//! so the output and the verdict are those of a sequential run. Interactive
//! mode runs on one thread and asks the reporter directly.

use super::problem::{flags, Code, Mode, PCtx, Prompt, Reporter};

/// Something that answers questions.
pub trait Ask {
    fn fix(&mut self, code: Code, p: &PCtx) -> bool;
    fn end_latch(&mut self, code: Code);
    /// True when no more questions will be answered yes (preen halt, abort).
    fn stopped(&self) -> bool;
}

impl Ask for Reporter {
    fn fix(&mut self, code: Code, p: &PCtx) -> bool {
        Reporter::fix(self, code, p)
    }
    fn end_latch(&mut self, code: Code) {
        Reporter::end_latch(self, code)
    }
    fn stopped(&self) -> bool {
        self.should_stop()
    }
}

/// A recorded question.
#[derive(Debug, Clone)]
pub enum Event {
    Fix(Code, PCtx),
    EndLatch(Code),
}

/// Records questions, answering as the mode says.
#[derive(Debug)]
pub struct Recorder {
    mode: Mode,
    pub events: Vec<Event>,
    halted: bool,
    latch_answers: [Option<bool>; 5],
}

fn latch_index(f: u32) -> Option<usize> {
    if f & flags::LATCH_BLOCK != 0 {
        Some(0)
    } else if f & flags::LATCH_TOOBIG != 0 {
        Some(1)
    } else if f & flags::LATCH_BG_CSUM != 0 {
        Some(2)
    } else if f & flags::LATCH_LOW_DTIME != 0 {
        Some(3)
    } else if f & flags::LATCH_RELOC != 0 {
        Some(4)
    } else {
        None
    }
}

/// The answer a non-interactive mode gives to `code` (and whether a preen
/// run stops there).
pub fn policy(mode: Mode, code: Code) -> (bool, bool) {
    let info = code.info();
    if info.flags & flags::FATAL != 0 {
        return (false, true);
    }
    if info.prompt == Prompt::None {
        return (mode != Mode::No, false);
    }
    match mode {
        Mode::No | Mode::Ask => (false, false),
        Mode::Yes => (true, false),
        Mode::Preen => {
            if info.flags & flags::PREEN_OK == 0 {
                (false, true)
            } else {
                (info.flags & flags::PREEN_NO == 0, false)
            }
        }
    }
}

impl Recorder {
    pub fn new(mode: Mode) -> Recorder {
        Recorder {
            mode,
            events: Vec::new(),
            halted: false,
            latch_answers: [None; 5],
        }
    }

    /// Replays the records through the reporter.
    pub fn replay(self, rep: &mut Reporter) {
        for ev in self.events {
            match ev {
                Event::Fix(c, p) => {
                    rep.fix(c, &p);
                }
                Event::EndLatch(c) => rep.end_latch(c),
            }
        }
    }
}

impl Ask for Recorder {
    fn fix(&mut self, code: Code, p: &PCtx) -> bool {
        if self.halted {
            return false;
        }
        self.events.push(Event::Fix(code, p.clone()));
        let info = code.info();
        let mut latched = None;
        if let Some(i) = latch_index(info.flags) {
            match self.latch_answers[i] {
                Some(a) => latched = Some(a),
                None => {
                    let question = match i {
                        0 => Code::InodeBlockLatch,
                        1 => Code::InodeToobig,
                        2 => Code::GdtCsumLatch,
                        3 => Code::OrphanListRefugees,
                        _ => Code::RelocateHint,
                    };
                    let (a, halt) = policy(self.mode, question);
                    if halt {
                        self.halted = true;
                        return false;
                    }
                    self.latch_answers[i] = Some(a);
                    latched = Some(a);
                }
            }
        }
        if info.flags & flags::FATAL != 0 {
            self.halted = true;
            return false;
        }
        if info.prompt == Prompt::None {
            return self.mode != Mode::No;
        }
        if self.mode == Mode::Preen && info.flags & flags::PREEN_OK == 0 {
            self.halted = true;
            return false;
        }
        if let Some(a) = latched {
            return a;
        }
        policy(self.mode, code).0
    }

    fn end_latch(&mut self, code: Code) {
        self.events.push(Event::EndLatch(code));
        if let Some(i) = latch_index(code.info().flags) {
            self.latch_answers[i] = None;
        }
    }

    fn stopped(&self) -> bool {
        self.halted
    }
}
