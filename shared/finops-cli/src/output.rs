//! How `finops` prints: tables, colour on a terminal only (and never with `NO_COLOR`), and a
//! spinner on stderr while a long scan runs (drawn only when stderr is a terminal).

use std::io::IsTerminal;
use std::time::Duration;

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};

/// Colour, when stdout is a terminal and `NO_COLOR` is not set.
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    on: bool,
}

impl Paint {
    pub fn detect() -> Paint {
        Paint {
            on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }

    pub fn red(&self, s: &str) -> String {
        self.wrap("1;31", s)
    }

    pub fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }

    pub fn yellow(&self, s: &str) -> String {
        self.wrap("33", s)
    }
}

/// How wide a table may be: `COLUMNS` when the shell exports it, else 140 (long cells wrap).
fn width() -> u16 {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|w| *w >= 40)
        .unwrap_or(140)
}

/// A table of `rows` under `headers`; the columns in `numeric` are right-aligned.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>, numeric: &[usize]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width())
        .set_header(headers.to_vec());
    for r in rows {
        t.add_row(r);
    }
    for &i in numeric {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    format!("{t}\n")
}

/// Dollars as the reports print them.
pub fn usd(v: f64) -> String {
    remediation::slack::usd(Some(v))
}

/// A time as the tables print it.
pub fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A spinner with `message` on stderr until it is dropped (nothing when stderr is not a terminal).
pub struct Spinner(indicatif::ProgressBar);

impl Spinner {
    pub fn start(message: String) -> Spinner {
        let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        Spinner(bar)
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
