//! Panics inside the libraries that read users' files, turned into errors.

use anyhow::Result;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    /// Set while this thread runs a library under `guarded`: a panic then is caught and
    /// reported as an error, and the panic hook stays quiet about it.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, a call into a library that reads users' files (a runtime, a picture
/// decoder), so that a panic inside it becomes an error: srgraph checks what it
/// hands such a library, and this is the last line of defence when a file gets
/// past those checks to a bug in the library.
pub fn guarded<T>(runtime: &str, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                default(info);
            }
        }));
    });
    let was = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    match result {
        Ok(r) => r,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            anyhow::bail!(
                "{runtime} failed to {what}: it hit an internal error ({message}); the model is probably malformed \
                 in a way srgraph's checks do not catch (the other --engine may say more)"
            )
        }
    }
}
