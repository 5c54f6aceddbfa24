//! A thread-local "gradients wanted" switch, like PyTorch's `no_grad`.
//!
//! Activations always carry dfdx's tape, so there is one forward path; but
//! the project's own kernels check this switch and, when it is off, neither
//! register a backward pass nor keep what it would need. Evaluation and
//! inference benchmarks run inside [`no_grad`].

use std::cell::Cell;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether backward passes are being recorded on this thread.
pub fn is_enabled() -> bool {
    ENABLED.with(Cell::get)
}

/// Runs `f` with gradient recording off, restoring the previous state
/// afterwards (also when `f` panics).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ENABLED.with(|e| e.set(self.0));
        }
    }
    let _restore = Restore(ENABLED.with(|e| e.replace(false)));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_grad_is_scoped_and_nests() {
        assert!(is_enabled());
        no_grad(|| {
            assert!(!is_enabled());
            no_grad(|| assert!(!is_enabled()));
            assert!(!is_enabled());
        });
        assert!(is_enabled());
        let r = std::panic::catch_unwind(|| no_grad(|| panic!("boom")));
        assert!(r.is_err());
        assert!(is_enabled());
    }
}
