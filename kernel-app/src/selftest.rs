//! Diagnostics selected by `spacecore.selftest=...`: they make the guest fail in known ways so
//! that the launcher's crash handling can be tested on the real image.

use crate::cmdline::SelfTest;

/// Runs the self-test; none of them returns.
pub fn run(test: SelfTest) -> ! {
    match test {
        SelfTest::Panic => panic!("self-test panic requested on the command line"),
        SelfTest::Fault => crate::arch::fault(),
        SelfTest::Exit(code) => crate::hypercall::exit(code),
        SelfTest::BadBuffer => {
            // SAFETY: the slice is never read by the guest: only its address and length go to
            // the launcher, which must refuse them (the range ends past any guest memory).
            let outside = unsafe { core::slice::from_raw_parts((u64::MAX - 64) as *const u8, 32) };
            crate::hypercall::console_write(outside);
            panic!("the launcher accepted a console buffer outside guest memory")
        }
        SelfTest::BadPort => {
            crate::arch::out32(0x3f8, 0);
            panic!("a write to a port outside the hypercall range did not fault")
        }
    }
}
