//! Console output: text is gathered into lines and each line goes to the launcher in one
//! hypercall (one VM exit per line, never per byte).

use core::fmt::{self, Write};
use spinning_top::Spinlock;

const LINE: usize = 512;

struct LineBuffer {
    buf: [u8; LINE],
    len: usize,
}

impl LineBuffer {
    fn flush(&mut self) {
        if self.len > 0 {
            crate::hypercall::console_write(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Write for LineBuffer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' || self.len == LINE {
                self.flush();
            }
        }
        Ok(())
    }
}

static CONSOLE: Spinlock<LineBuffer> = Spinlock::new(LineBuffer { buf: [0; LINE], len: 0 });

/// Writes formatted text; used by [`println!`].
pub fn write_fmt(args: fmt::Arguments) {
    let mut console = CONSOLE.lock();
    // Writing into the line buffer cannot fail.
    let _ = console.write_fmt(args);
}

/// Prints a line on the launcher's output, marked as the guest's.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}
