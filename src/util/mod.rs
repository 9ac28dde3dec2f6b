//! Small helpers shared by every stage, one topic a file.

mod files;
mod guard;
mod lock;
mod memory;
mod npy;
mod plot;

pub use files::{check_output, folder_of, remove_stale_temporaries, same_file, write_atomic, write_output};
pub use guard::guarded;
pub use lock::{FolderInUse, FolderLock};
pub use memory::{available_memory, short_of_memory};
pub use npy::npy_bytes;
pub use plot::{register_font, save_plot, PlotArea};

/// Thousands separators for counts people read.
pub fn grouped(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
