//! The kernel command line: `key=value` words separated by spaces. The runtime reads the
//! `spacecore.*` keys; anything else is kept for the AVS logic.

/// What the runtime takes from the command line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    /// A self-test to run after boot instead of serving (`spacecore.selftest=...`).
    pub selftest: Option<SelfTest>,
}

/// Diagnostics that exercise the launcher's crash handling; never on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfTest {
    /// Panic with a known message.
    Panic,
    /// Take a page fault on the null page.
    Fault,
    /// Exit at once with this status.
    Exit(u8),
    /// Hand the launcher a console buffer that lies outside guest memory.
    BadBuffer,
    /// Write to a port that is not a hypercall port.
    BadPort,
}

/// An unusable `spacecore.*` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadArg<'a>(pub &'a str);

/// Parses the command line; unknown `spacecore.*` keys and bad values are errors.
pub fn parse(line: &str) -> Result<Args, BadArg<'_>> {
    let mut args = Args::default();
    for word in line.split_ascii_whitespace() {
        let Some(rest) = word.strip_prefix("spacecore.") else { continue };
        let (key, value) = rest.split_once('=').ok_or(BadArg(word))?;
        match key {
            "selftest" => {
                args.selftest = Some(match value {
                    "panic" => SelfTest::Panic,
                    "fault" => SelfTest::Fault,
                    "bad-buffer" => SelfTest::BadBuffer,
                    "bad-port" => SelfTest::BadPort,
                    v => {
                        let code = v.strip_prefix("exit:").ok_or(BadArg(word))?;
                        SelfTest::Exit(code.parse().map_err(|_| BadArg(word))?)
                    }
                })
            }
            _ => return Err(BadArg(word)),
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_selftests_and_ignores_other_words() {
        assert_eq!(parse(""), Ok(Args::default()));
        assert_eq!(parse("quiet foo=bar").unwrap().selftest, None);
        assert_eq!(parse("spacecore.selftest=panic").unwrap().selftest, Some(SelfTest::Panic));
        assert_eq!(parse(" spacecore.selftest=fault ").unwrap().selftest, Some(SelfTest::Fault));
        assert_eq!(parse("spacecore.selftest=exit:7").unwrap().selftest, Some(SelfTest::Exit(7)));
        assert_eq!(parse("spacecore.selftest=bad-buffer").unwrap().selftest, Some(SelfTest::BadBuffer));
        assert_eq!(parse("spacecore.selftest=bad-port").unwrap().selftest, Some(SelfTest::BadPort));
    }

    #[test]
    fn rejects_bad_spacecore_words() {
        for bad in [
            "spacecore.selftest",
            "spacecore.selftest=boom",
            "spacecore.selftest=exit:300",
            "spacecore.nope=1",
        ] {
            assert_eq!(parse(bad), Err(BadArg(bad)), "{bad}");
        }
    }
}
