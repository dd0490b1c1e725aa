//! Unit tests of the pure helpers: units, image references, positions.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::address::{check_host, parse_guest, parse_host, parse_publish};
use crate::error::line_column;
use crate::image_ref::{ImageRef, ImageSource, looks_like_path, parse_image};
use crate::plan::{DEFAULT_GUEST_ADDRESS, DEFAULT_HOST_ADDRESS, DEFAULT_PREFIX_LEN};
use crate::tree::join_key;
use crate::units::{
    GBPS, GIB, KBPS, KIB, MBPS, MIB, TIB, UnitError, format_binary_size, format_duration_ms, gbps_from_float,
    gbps_from_integer, parse_binary_size, parse_bit_rate, parse_duration_ms,
};

#[test]
fn durations_in_every_unit() {
    for (text, ms) in
        [("0ms", 0), ("10ms", 10), ("5s", 5_000), ("2m", 120_000), ("1h", 3_600_000), ("007s", 7_000)]
    {
        assert_eq!(parse_duration_ms(text), Ok(ms), "{text}");
    }
    assert!(matches!(parse_duration_ms("5"), Err(UnitError::MissingUnit { .. })));
    assert!(matches!(parse_duration_ms("1.5s"), Err(UnitError::FractionalDuration { .. })));
    assert!(matches!(parse_duration_ms("5 s"), Err(UnitError::SpaceBeforeUnit { .. })));
    assert!(matches!(parse_duration_ms("5sec"), Err(UnitError::UnknownUnit { .. })));
    assert!(matches!(parse_duration_ms("-5s"), Err(UnitError::NotPositive { .. })));
    assert!(matches!(parse_duration_ms("s"), Err(UnitError::Malformed { .. })));
    assert!(matches!(parse_duration_ms("18446744073709551615s"), Err(UnitError::TooLarge { .. })));
    for (ms, text) in
        [(0, "0ms"), (10, "10ms"), (1_500, "1500ms"), (60_000, "1m"), (90_000, "90s"), (7_200_000, "2h")]
    {
        assert_eq!(format_duration_ms(ms), text);
        assert_eq!(parse_duration_ms(text), Ok(ms));
    }
}

#[test]
fn every_binary_suffix() {
    let cases = [
        ("1Ki", KIB),
        ("1KiB", KIB),
        ("3Mi", 3 * MIB),
        ("3MiB", 3 * MIB),
        ("8Gi", 8 * GIB),
        ("8GiB", 8 * GIB),
        ("2Ti", 2 * TIB),
        ("2TiB", 2 * TIB),
        ("0Ki", 0),
        ("007Mi", 7 * MIB),
    ];
    for (text, bytes) in cases {
        assert_eq!(parse_binary_size(text), Ok(bytes), "{text}");
    }
    assert_eq!((KIB, MIB, GIB, TIB), (1024, 1 << 20, 1 << 30, 1 << 40));
}

#[test]
fn binary_size_rejections() {
    let malformed = |text: &str| matches!(parse_binary_size(text), Err(UnitError::Malformed { .. }));
    for text in ["eight", "", "Gi", "-1Gi", " 8Gi", "+8Gi"] {
        assert!(malformed(text), "{text:?}");
    }
    assert!(matches!(parse_binary_size("8"), Err(UnitError::MissingUnit { .. })));
    for (text, suggestion) in [
        ("8GB", "8Gi"),
        ("8G", "8Gi"),
        ("512M", "512Mi"),
        ("512MB", "512Mi"),
        ("4k", "4Ki"),
        ("4kB", "4Ki"),
        ("4KB", "4Ki"),
        ("1T", "1Ti"),
        ("1TB", "1Ti"),
    ] {
        assert_eq!(
            parse_binary_size(text),
            Err(UnitError::DecimalUnit { text: text.to_owned(), suggestion: suggestion.to_owned() })
        );
    }
    for (text, unit) in [("8Xi", "Xi"), ("8gi", "gi"), ("1Pi", "Pi"), ("8B", "B"), ("8Gi ", "Gi ")] {
        assert_eq!(
            parse_binary_size(text),
            Err(UnitError::UnknownUnit {
                text: text.to_owned(),
                unit: unit.to_owned(),
                accepted: "Ki, Mi, Gi, Ti (or KiB, MiB, GiB, TiB)"
            }),
            "{text}"
        );
    }
    assert!(matches!(parse_binary_size("1.5Gi"), Err(UnitError::Fractional { .. })));
    assert!(matches!(parse_binary_size("8 Gi"), Err(UnitError::SpaceBeforeUnit { .. })));
}

#[test]
fn binary_size_boundaries_and_overflow() {
    // 2^64 - 1 is not a whole number of KiB; the largest representable sizes:
    assert_eq!(parse_binary_size("16777215Ti"), Ok(16_777_215 * TIB));
    assert_eq!(parse_binary_size("18014398509481983Ki"), Ok(u64::MAX - 1023));
    let too_large = |text: &str| matches!(parse_binary_size(text), Err(UnitError::TooLarge { .. }));
    assert!(too_large("16777216Ti"));
    assert!(too_large("18014398509481984Ki"));
    assert!(too_large("99999999999Ti"));
    assert!(too_large("99999999999999999999999999Ki"));
}

#[test]
fn bit_rates() {
    let cases = [
        ("1Kbps", KBPS),
        ("1Mbps", MBPS),
        ("1Gbps", GBPS),
        ("100Mbps", 100 * MBPS),
        ("2.5Gbps", 2_500_000_000),
        ("1.5Kbps", 1_500),
        ("0.001Kbps", 1),
        ("1.000Kbps", 1_000),
        ("0.000000001Gbps", 1),
        ("18446744073Gbps", 18_446_744_073 * GBPS),
        ("18446744073709551Kbps", 18_446_744_073_709_551_000),
    ];
    for (text, bps) in cases {
        assert_eq!(parse_bit_rate(text), Ok(bps), "{text}");
    }
    assert_eq!((KBPS, MBPS, GBPS), (1_000, 1_000_000, 1_000_000_000));
}

#[test]
fn bit_rate_rejections() {
    let kind = |text: &str| parse_bit_rate(text).unwrap_err();
    assert!(matches!(kind("fast"), UnitError::Malformed { .. }));
    assert!(matches!(kind(".5Gbps"), UnitError::Malformed { .. }));
    assert!(matches!(kind("1.Gbps"), UnitError::Malformed { .. }));
    assert!(matches!(kind("1.2.3Gbps"), UnitError::Malformed { .. }));
    assert!(matches!(kind("10"), UnitError::MissingUnit { .. }));
    assert!(matches!(kind("10 Gbps"), UnitError::SpaceBeforeUnit { .. }));
    for unit in ["Gb", "gbps", "GBps", "bps", "Tbps", "GB/s"] {
        assert!(matches!(kind(&format!("1{unit}")), UnitError::UnknownUnit { .. }), "{unit}");
    }
    assert!(matches!(kind("0Gbps"), UnitError::NotPositive { .. }));
    assert!(matches!(kind("0.0Mbps"), UnitError::NotPositive { .. }));
    assert!(matches!(kind("-1Gbps"), UnitError::NotPositive { .. }));
    assert!(matches!(kind("0.0001Kbps"), UnitError::FractionalBits { .. }));
    assert!(matches!(kind("1.0000000001Gbps"), UnitError::FractionalBits { .. }));
    assert!(matches!(kind("18446744074Gbps"), UnitError::TooLarge { .. }));
    assert!(matches!(kind("18446744073709552Kbps"), UnitError::TooLarge { .. }));
    assert!(matches!(kind("99999999999999999999999999999999999999999Gbps"), UnitError::TooLarge { .. }));
}

#[test]
fn bare_numbers_are_gbps() {
    assert_eq!(gbps_from_integer(10), Ok(10 * GBPS));
    assert_eq!(gbps_from_integer(18_446_744_073), Ok(18_446_744_073 * GBPS));
    assert!(matches!(gbps_from_integer(18_446_744_074), Err(UnitError::TooLarge { .. })));
    assert!(matches!(gbps_from_integer(0), Err(UnitError::NotPositive { .. })));
    assert!(matches!(gbps_from_integer(-5), Err(UnitError::NotPositive { .. })));

    assert_eq!(gbps_from_float("2.5"), Ok(2_500_000_000));
    assert_eq!(gbps_from_float("+0.25"), Ok(250_000_000));
    assert_eq!(gbps_from_float("0.000000001"), Ok(1));
    assert_eq!(gbps_from_float("1e1"), Ok(10 * GBPS));
    assert_eq!(gbps_from_float("1.8e10"), Ok(18 * GBPS * 1_000_000_000));
    assert_eq!(gbps_from_float("2.5E-1"), Ok(250_000_000));
    assert!(matches!(gbps_from_float("0.0"), Err(UnitError::NotPositive { .. })));
    assert!(matches!(gbps_from_float("-1.5"), Err(UnitError::NotPositive { .. })));
    assert!(matches!(gbps_from_float("1e-12"), Err(UnitError::NotPositive { .. })));
    assert!(matches!(gbps_from_float("0.0000000001"), Err(UnitError::FractionalBits { .. })));
    assert!(matches!(gbps_from_float("inf"), Err(UnitError::TooLarge { .. })));
    assert!(matches!(gbps_from_float("1e11"), Err(UnitError::TooLarge { .. })));
    assert!(matches!(gbps_from_float("nan"), Err(UnitError::Malformed { .. })));
}

#[test]
fn binary_sizes_format_in_the_largest_exact_unit() {
    assert_eq!(format_binary_size(16 * GIB), "16Gi");
    assert_eq!(format_binary_size(2 * MIB), "2Mi");
    assert_eq!(format_binary_size(1536 * MIB), "1536Mi");
    assert_eq!(format_binary_size(3 * TIB), "3Ti");
    assert_eq!(format_binary_size(1025 * KIB), "1025Ki");
    assert_eq!(format_binary_size(1000), "1000 bytes");
    assert_eq!(format_binary_size(0), "0 bytes");
}

#[test]
fn image_references() {
    let reference = |repository: &str, tag: &str| {
        Ok(ImageSource::Reference(ImageRef {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            digest: None,
        }))
    };
    let dir = Path::new("/srv");
    assert_eq!(parse_image("avs", dir), reference("avs", "latest"));
    assert_eq!(parse_image("avs:v1", dir), reference("avs", "v1"));
    assert_eq!(
        parse_image("registry/path/avs-spacecore:latest", dir),
        reference("registry/path/avs-spacecore", "latest")
    );
    assert_eq!(
        parse_image("reg.example/a_b/c.d-e:V1.0_rc-2", dir),
        reference("reg.example/a_b/c.d-e", "V1.0_rc-2")
    );
    assert_eq!(parse_image("a:.", dir), reference("a", "."));
    let tag128 = "t".repeat(128);
    assert_eq!(parse_image(&format!("a:{tag128}"), dir), reference("a", &tag128));
    for bad in [
        "UPPER:tag",
        "a::b",
        "a:",
        ":tag",
        "a/:t",
        "a//b",
        "a-:t",
        "_a",
        "a b",
        "a:t g",
        "a@sha256:00",
        "a@sha512:00",
        "a@",
        "@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "localhost:5000/a:t",
        "app.elf",
        "",
    ] {
        assert!(parse_image(bad, dir).is_err(), "{bad:?} must be rejected");
    }
    assert!(parse_image(&format!("a:{tag128}x"), dir).is_err());
    assert!(parse_image(&"a".repeat(256), dir).is_err());
    assert!(parse_image(&"a".repeat(255), dir).is_ok());
    let shown = ImageRef::parse("registry/path/avs-spacecore").unwrap().to_string();
    assert_eq!(shown, "registry/path/avs-spacecore:latest");
    // Pinned to a digest, with or without a tag.
    let digest = "0123456789abcdef".repeat(4);
    let pinned = ImageRef::parse(&format!("avs@sha256:{digest}")).unwrap();
    assert_eq!((pinned.tag.as_str(), pinned.digest.as_deref()), ("latest", Some(digest.as_str())));
    assert_eq!(pinned.to_string(), format!("avs:latest@sha256:{digest}"));
    assert!(pinned.admits(&digest) && !pinned.admits(&"0".repeat(64)));
    let tagged = ImageRef::parse(&format!("avs:v2@sha256:{digest}")).unwrap();
    assert_eq!(tagged.tag, "v2");
    assert!(ImageRef::parse("avs:v2").unwrap().admits("anything"), "an unpinned reference admits any digest");
    let upper = format!("avs@sha256:{}", digest.to_uppercase());
    assert!(ImageRef::parse(&upper).unwrap_err().contains("not a sha256 digest"));
    assert!(ImageRef::parse(&format!("avs@sha256:{digest}0")).is_err(), "65 digits");
}

#[test]
fn image_paths() {
    // A '/' plus a ".elf" ending makes a path even if it could read as a tag.
    for path in ["./a", "../a", "/a", "out/app.elf", "/x/y.elf", "./app.elf", "reg/app:v1.elf"] {
        assert!(looks_like_path(path), "{path}");
    }
    for reference in ["app", "app.elf", "reg/app", "app:v1.elf"] {
        assert!(!looks_like_path(reference), "{reference}");
    }
    let path = |text: &str, dir: &str| parse_image(text, Path::new(dir));
    assert_eq!(path("./a.elf", "/srv/x"), Ok(ImageSource::Path(PathBuf::from("/srv/x/a.elf"))));
    assert_eq!(path("./a.elf", ""), Ok(ImageSource::Path(PathBuf::from("a.elf"))));
    assert_eq!(path("/abs/./a.elf", "/srv"), Ok(ImageSource::Path(PathBuf::from("/abs/a.elf"))));
    assert_eq!(path("../a.elf", "rel"), Ok(ImageSource::Path(PathBuf::from("rel/../a.elf"))));
    assert!(path("./out/", "/srv").is_err());
    assert_eq!(ImageSource::Path(PathBuf::from("/srv/a.elf")).to_string(), "/srv/a.elf");
}

#[test]
fn positions_are_one_based_in_characters() {
    let source = "a = 1\nbé = \"x\"\n\nc = 3";
    assert_eq!(line_column(source, 0), (1, 1));
    assert_eq!(line_column(source, 4), (1, 5));
    assert_eq!(line_column(source, 6), (2, 1));
    // 'é' is two bytes but one column: '=' is byte 10, column 4.
    assert_eq!(&source[10..11], "=");
    assert_eq!(line_column(source, 10), (2, 4));
    // Inside a multi-byte character: rounds down to its start.
    assert_eq!(line_column(source, 8), (2, 2));
    assert_eq!(line_column(source, 16), (3, 1));
    assert_eq!(line_column(source, 17), (4, 1));
    assert_eq!(line_column(source, 999), (4, 6));
}

#[test]
fn dotted_keys_quote_non_bare_parts() {
    assert_eq!(join_key("", "spec"), "spec");
    assert_eq!(join_key("spec", "resources"), "spec.resources");
    assert_eq!(join_key("a", "my port"), "a.\"my port\"");
    assert_eq!(join_key("a", "x.y"), "a.\"x.y\"");
    assert_eq!(join_key("a", ""), "a.\"\"");
}

#[test]
fn tap_addresses() {
    assert_eq!(parse_guest("10.0.0.2/30"), Ok((DEFAULT_GUEST_ADDRESS, DEFAULT_PREFIX_LEN)));
    assert_eq!(check_host(DEFAULT_HOST_ADDRESS, DEFAULT_GUEST_ADDRESS, DEFAULT_PREFIX_LEN), Ok(()));
    let v4 = |a, b, c, d| Ipv4Addr::new(a, b, c, d);
    // Both ends of the prefix range, at the edges of their subnets.
    assert_eq!(parse_guest("10.255.255.254/8"), Ok((v4(10, 255, 255, 254), 8)));
    assert!(parse_guest("10.255.255.255/8").unwrap_err().contains("broadcast address of 10.0.0.0/8"));
    assert!(parse_guest("10.0.0.0/8").unwrap_err().contains("network address of 10.0.0.0/8"));
    assert_eq!(parse_guest("10.0.0.5/30"), Ok((v4(10, 0, 0, 5), 30)));
    assert!(parse_guest("10.0.0.2/31").is_err());
    assert!(parse_guest("10.0.0.2/7").is_err());
    // A /30 has exactly two usable addresses; the suggestion is the other one.
    let suggestion = |host, guest| check_host(host, guest, 30).unwrap_err().instead;
    assert_eq!(
        suggestion(v4(10, 0, 0, 9), v4(10, 0, 0, 5)),
        "another address of 10.0.0.4/30, such as \"10.0.0.6\""
    );
    assert_eq!(
        suggestion(v4(10, 0, 0, 7), v4(10, 0, 0, 6)),
        "another address of 10.0.0.4/30, such as \"10.0.0.5\""
    );
    assert_eq!(check_host(v4(10, 0, 0, 6), v4(10, 0, 0, 5), 30), Ok(()));
    assert_eq!(check_host(v4(10, 200, 1, 1), v4(10, 0, 0, 2), 8), Ok(()));
    assert!(check_host(v4(11, 0, 0, 1), v4(10, 0, 0, 2), 8).is_err());
    assert_eq!(parse_host("192.168.0.1"), Ok(v4(192, 168, 0, 1)));
    assert!(parse_host(" 192.168.0.1").is_err());
    assert_eq!(parse_publish("0.0.0.0"), Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    assert!(parse_publish("ff02::1").is_err());
}
