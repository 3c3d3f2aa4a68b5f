//! Table-driven corpus for `address::parse_cell`: every row names the rule it
//! exercises, the input, and either the normalised mailbox with its exact flag
//! set or a fragment the error message must contain.

use sendercheck::address::{parse_cell, AddressError};
use sendercheck::verdict::Flag::{self, *};

enum Want {
    Ok(String, Vec<Flag>),
    Err(String),
}

struct Case {
    rule: &'static str,
    input: String,
    want: Want,
}

fn ok(
    rule: &'static str,
    input: impl Into<String>,
    norm: impl Into<String>,
    flags: &[Flag],
) -> Case {
    Case {
        rule,
        input: input.into(),
        want: Want::Ok(norm.into(), flags.to_vec()),
    }
}

fn bad(rule: &'static str, input: impl Into<String>, fragment: impl Into<String>) -> Case {
    Case {
        rule,
        input: input.into(),
        want: Want::Err(fragment.into()),
    }
}

fn rep(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

/// A valid domain of exactly `total` octets: 62-octet labels, then ".com".
fn domain_of(total: usize) -> String {
    let mut rem = total - 4;
    let mut s = String::new();
    let mut ch = b'a';
    while rem > 63 {
        s.push_str(&rep(ch as char, 62));
        s.push('.');
        rem -= 63;
        ch += 1;
    }
    s.push_str(&rep(ch as char, rem));
    s.push_str(".com");
    assert_eq!(s.len(), total);
    s
}

fn corpus() -> Vec<Case> {
    let l64 = rep('l', 64);
    vec![
        // --- plain dot-strings and domain normalisation
        ok("plain address", "news@example.com", "news@example.com", &[]),
        ok(
            "dots between atoms",
            "first.last@example.com",
            "first.last@example.com",
            &[],
        ),
        ok(
            "every RFC 5322 atext special is allowed unquoted",
            "a!#$%&'*+-/=?^_`{|}~z@example.com",
            "a!#$%&'*+-/=?^_`{|}~z@example.com",
            &[],
        ),
        ok(
            "domain lower-cased, local part case kept",
            "News.Letter@Example.COM",
            "News.Letter@example.com",
            &[],
        ),
        ok(
            "many labels",
            "x@sub.mail.example.co.uk",
            "x@sub.mail.example.co.uk",
            &[],
        ),
        ok(
            "inner hyphen in a label",
            "a@mail-out.example",
            "a@mail-out.example",
            &[],
        ),
        ok(
            "label may start with a digit",
            "a@123mail.example",
            "a@123mail.example",
            &[],
        ),
        ok(
            "single-character local part",
            "a@example.com",
            "a@example.com",
            &[],
        ),
        ok(
            "ASCII A-label TLD with valid Punycode passes unflagged",
            "a@example.xn--p1ai",
            "a@example.xn--p1ai",
            &[],
        ),
        // --- quoted local parts: kept exactly as written
        ok(
            "quoted with a space",
            "\"john smith\"@example.com",
            "\"john smith\"@example.com",
            &[],
        ),
        ok(
            "quoted with escaped quote",
            r#""a\"b"@example.com"#,
            r#""a\"b"@example.com"#,
            &[],
        ),
        ok(
            "quoted '@' is not the separator",
            "\"a@b\"@example.com",
            "\"a@b\"@example.com",
            &[],
        ),
        ok(
            "quoted escaped backslash",
            r#""a\\b"@example.com"#,
            r#""a\\b"@example.com"#,
            &[],
        ),
        ok(
            "quoted dots may repeat",
            "\"a..b\"@example.com",
            "\"a..b\"@example.com",
            &[],
        ),
        ok(
            "empty quoted string is RFC 5321 syntax",
            "\"\"@example.com",
            "\"\"@example.com",
            &[],
        ),
        ok(
            "quoted plain text is not unquoted",
            "\"News\"@Example.com",
            "\"News\"@example.com",
            &[],
        ),
        bad(
            "text after the closing quote",
            "\"a\"b@example.com",
            "text after its closing quote",
        ),
        bad(
            "quote in the middle of a dot-string",
            "a\"b\"@example.com",
            "quotes must enclose the whole local part",
        ),
        bad(
            "unterminated quoted local part",
            "\"abc@example.com",
            "no closing '\"'",
        ),
        bad(
            "escaped closing quote leaves the quote open",
            r#""a\"@example.com"#,
            "no closing '\"'",
        ),
        bad(
            "quoted-pair needs printable ASCII",
            "\"a\\é\"@example.com",
            "must be followed by a printable ASCII character",
        ),
        // --- dots at edges / consecutive
        bad(
            "leading dot in local part",
            ".a@example.com",
            "local part starts with a dot",
        ),
        bad(
            "trailing dot in local part",
            "a.@example.com",
            "local part ends with a dot",
        ),
        bad(
            "consecutive dots in local part",
            "a..b@example.com",
            "local part has consecutive dots (\"a..b\")",
        ),
        bad(
            "leading dot in domain",
            "a@.example.com",
            "domain starts with a dot",
        ),
        bad(
            "consecutive dots in domain",
            "a@example..com",
            "domain has consecutive dots",
        ),
        bad(
            "trailing root dot refused, not normalised",
            "a@example.com.",
            "domain ends with a dot",
        ),
        // --- characters outside atext / LDH
        bad(
            "space needs quoting",
            "john smith@example.com",
            "local part contains a space",
        ),
        bad(
            "comma needs quoting",
            "a,b@example.com",
            "local part contains ','",
        ),
        bad(
            "parenthesis needs quoting",
            "a(b)@example.com",
            "local part contains '('",
        ),
        bad(
            "backslash outside quotes",
            "a\\b@example.com",
            "only allowed inside a quoted local part",
        ),
        bad(
            "underscore in domain",
            "a@exa_mple.com",
            "domain contains '_'",
        ),
        bad(
            "space in domain",
            "a@exa mple.com",
            "domain contains a space",
        ),
        bad(
            "label starting with hyphen",
            "a@-example.com",
            "starts with a hyphen",
        ),
        bad(
            "label ending with hyphen",
            "a@example-.com",
            "ends with a hyphen",
        ),
        bad("single-label domain refused", "a@localhost", "has no dot"),
        bad(
            "bare IPv4 as domain",
            "a@192.0.2.1",
            "write it as an address literal [192.0.2.1]",
        ),
        bad(
            "all-digit top-level label",
            "a@example.123",
            "all-digit top-level label",
        ),
        // --- address literals
        ok(
            "IPv4 literal",
            "a@[192.0.2.1]",
            "a@[192.0.2.1]",
            &[AddressLiteral],
        ),
        ok(
            "IPv6 literal",
            "a@[IPv6:2001:db8::1]",
            "a@[IPv6:2001:db8::1]",
            &[AddressLiteral],
        ),
        ok(
            "IPv6 literal normalised to RFC 5952 form",
            "a@[ipv6:2001:DB8:0:0:0:0:0:1]",
            "a@[IPv6:2001:db8::1]",
            &[AddressLiteral],
        ),
        ok(
            "IPv6 literal with embedded IPv4",
            "a@[IPv6:::ffff:192.0.2.1]",
            "a@[IPv6:::ffff:192.0.2.1]",
            &[AddressLiteral],
        ),
        ok(
            "general address literal",
            "a@[x-tag:some-content]",
            "a@[x-tag:some-content]",
            &[AddressLiteral],
        ),
        bad(
            "bad IPv6 digit",
            "a@[IPv6:2001:db8::g]",
            "not a valid IPv6 address",
        ),
        bad(
            "bad IPv6 triple colon",
            "a@[IPv6:2001:db8:::1]",
            "not a valid IPv6 address",
        ),
        bad(
            "bad IPv6 nine groups",
            "a@[IPv6:1:2:3:4:5:6:7:8:9]",
            "not a valid IPv6 address",
        ),
        bad(
            "IPv6 without its tag",
            "a@[2001:db8::1]",
            "write it as [IPv6:2001:db8::1]",
        ),
        bad(
            "IPv4 octet out of range",
            "a@[256.0.0.1]",
            "not a valid IPv4 address",
        ),
        bad(
            "IPv4 with three octets",
            "a@[192.0.2]",
            "not a valid IPv4 address",
        ),
        bad("unclosed literal", "a@[192.0.2.1", "no closing ']'"),
        bad("empty literal", "a@[]", "is empty"),
        bad(
            "space in general literal",
            "a@[tag:bad content]",
            "expected [IPv4], [IPv6:address] or [tag:content]",
        ),
        // --- internationalised domains
        ok(
            "IDN to A-label",
            "user@bücher.example",
            "user@xn--bcher-kva.example",
            &[IdnConverted],
        ),
        ok(
            "IDN upper case folded",
            "user@BÜCHER.Example",
            "user@xn--bcher-kva.example",
            &[IdnConverted],
        ),
        ok(
            "IDN second label",
            "user@münchen.de",
            "user@xn--mnchen-3ya.de",
            &[IdnConverted],
        ),
        ok(
            "IDN every label",
            "user@例え.テスト",
            "user@xn--r8jz45g.xn--zckzah",
            &[IdnConverted],
        ),
        ok(
            "IDN sharp s is nontransitional",
            "user@straße.de",
            "user@xn--strae-oqa.de",
            &[IdnConverted],
        ),
        bad(
            "bad Punycode in ASCII A-label",
            "user@xn--a.example",
            "not valid Punycode",
        ),
        bad(
            "bad ASCII char in Unicode domain named",
            "user@bü_cher.example",
            "domain contains '_'",
        ),
        bad(
            "label over 63 octets once converted",
            format!("user@{}ü.example", rep('a', 60)),
            "domain label is",
        ),
        bad(
            "IDN single label still needs a dot",
            "user@bücher",
            "has no dot",
        ),
        // --- UTF-8 local parts (RFC 6531)
        ok(
            "UTF-8 local part kept, flagged",
            "josé@example.com",
            "josé@example.com",
            &[NeedsSmtputf8],
        ),
        ok(
            "UTF-8 quoted local part",
            "\"josé x\"@example.com",
            "\"josé x\"@example.com",
            &[NeedsSmtputf8],
        ),
        ok(
            "UTF-8 local and IDN domain",
            "pelé@bücher.example",
            "pelé@xn--bcher-kva.example",
            &[NeedsSmtputf8, IdnConverted],
        ),
        bad(
            "zero-width space inside",
            "a\u{200B}b@example.com",
            "invisible",
        ),
        bad(
            "no-break space inside",
            "a@exa\u{00A0}mple.com",
            "non-ASCII space",
        ),
        bad("bidi override inside", "a\u{202E}b@example.com", "U+202E"),
        // --- length limits (RFC 5321 §4.5.3.1)
        ok(
            "local part exactly 64",
            format!("{l64}@example.com"),
            format!("{l64}@example.com"),
            &[],
        ),
        bad(
            "local part 65",
            format!("{}@example.com", rep('l', 65)),
            "local part is 65 octets; RFC 5321 allows 64",
        ),
        ok(
            "quoted local part exactly 64 including quotes",
            format!("\"{}\"@example.com", rep('q', 62)),
            format!("\"{}\"@example.com", rep('q', 62)),
            &[],
        ),
        bad(
            "quoted local part 65 including quotes",
            format!("\"{}\"@example.com", rep('q', 63)),
            "local part is 65 octets",
        ),
        ok(
            "UTF-8 local part exactly 64 octets (32 chars)",
            format!("{}@example.com", rep('é', 32)),
            format!("{}@example.com", rep('é', 32)),
            &[NeedsSmtputf8],
        ),
        bad(
            "UTF-8 local part counted in octets",
            format!("{}@example.com", rep('é', 33)),
            "local part is 66 octets",
        ),
        ok(
            "label exactly 63",
            format!("a@{}.com", rep('x', 63)),
            format!("a@{}.com", rep('x', 63)),
            &[],
        ),
        bad(
            "label 64",
            format!("a@{}.com", rep('x', 64)),
            "domain label is 64 octets",
        ),
        ok(
            "path exactly 256 (address 254) passes",
            format!("{l64}@{}", domain_of(189)),
            format!("{l64}@{}", domain_of(189)),
            &[],
        ),
        bad(
            "address 255 octets",
            format!("{l64}@{}", domain_of(190)),
            "address is 255 octets; RFC 5321 allows 254",
        ),
        bad(
            "domain 256 octets",
            format!("a@{}", domain_of(256)),
            "domain is 256 octets; RFC 5321 allows 255",
        ),
        bad(
            "domain 255 passes its own limit, fails the path",
            format!("a@{}", domain_of(255)),
            "address is 257 octets",
        ),
        // --- control characters: never reach an SMTP command
        bad(
            "CRLF command injection",
            "a@b.com\r\nRCPT TO:<x@y>",
            "contains a line break (CR, \\r) at character 8",
        ),
        bad(
            "bare LF at end is not trimmed away",
            "a@example.com\n",
            "line break (LF, \\n)",
        ),
        bad(
            "NUL in local part",
            "a\0@b.com",
            "a NUL byte (\\0) at character 2",
        ),
        bad(
            "CRLF inside a quoted local part",
            "\"a\r\nb\"@c.com",
            "line break",
        ),
        bad("tab inside", "a\tb@example.com", "a tab (\\t)"),
        bad(
            "trailing tab is not trimmed away",
            "a@example.com\t",
            "a tab (\\t) at character 14",
        ),
        bad("DEL", "a\u{7f}@example.com", "a DEL character"),
        bad("C1 next line", "a\u{85}@example.com", "U+0085"),
        bad(
            "ESC sequence",
            "\u{1b}[31ma@example.com",
            "(\\x1b) at character 1",
        ),
        bad(
            "CRLF inside a display name",
            "Name\r\n <a@example.com>",
            "line break",
        ),
        // --- the cell around the address
        ok(
            "surrounding spaces trimmed",
            "  news@example.com  ",
            "news@example.com",
            &[TrimmedWhitespace],
        ),
        ok(
            "no-break space trimmed",
            "\u{00A0}news@example.com",
            "news@example.com",
            &[TrimmedWhitespace],
        ),
        ok(
            "display name stripped",
            "News Team <news@example.com>",
            "news@example.com",
            &[DisplayNameStripped],
        ),
        ok(
            "quoted display name with comma",
            "\"Team, News\" <news@example.com>",
            "news@example.com",
            &[DisplayNameStripped],
        ),
        ok(
            "bare angle brackets: no flag",
            "<news@example.com>",
            "news@example.com",
            &[],
        ),
        ok(
            "spaces, name and case together",
            " \"N\" <News@EXAMPLE.com> ",
            "News@example.com",
            &[TrimmedWhitespace, DisplayNameStripped],
        ),
        ok(
            "spaces inside the brackets",
            "Name < news@example.com >",
            "news@example.com",
            &[DisplayNameStripped, TrimmedWhitespace],
        ),
        ok(
            "quoted '>' inside brackets",
            "<\"a>b\"@example.com>",
            "\"a>b\"@example.com",
            &[],
        ),
        ok(
            "quoted '<' without brackets",
            "\"a<b\"@example.com",
            "\"a<b\"@example.com",
            &[],
        ),
        bad("null sender", "<>", "the null sender"),
        bad(
            "unclosed angle bracket",
            "Name <news@example.com",
            "no closing '>'",
        ),
        bad(
            "stray closing bracket",
            "news@example.com>",
            "'>' with no opening '<'",
        ),
        bad(
            "text after the brackets",
            "<a@example.com> extra",
            "unexpected text after '>'",
        ),
        bad(
            "address as display name",
            "a@x.com <b@example.com>",
            "the name before '<' contains '@'",
        ),
        bad(
            "two named addresses",
            "A <a@x.com>, B <b@y.com>",
            "two addresses in one cell",
        ),
        bad(
            "two addresses, comma",
            "a@x.com, b@y.com",
            "put one sender per row",
        ),
        bad(
            "two addresses, semicolon",
            "a@x.com;b@y.com",
            "two addresses in one cell",
        ),
        bad(
            "two addresses, space",
            "a@x.com b@y.com",
            "two addresses in one cell",
        ),
        bad(
            "mailto prefix",
            "mailto:news@example.com",
            "remove it and keep only the address",
        ),
        bad(
            "mailto inside brackets",
            "<MAILTO:news@example.com>",
            "\"mailto:\"",
        ),
        bad(
            "source route",
            "@relay.example:news@example.com",
            "source route",
        ),
        bad("empty cell", "", "empty cell"),
        bad("whitespace-only cell", "   ", "empty cell"),
        bad("missing @", "newsexample.com", "no '@'"),
        bad("@ at start", "@example.com", "nothing before '@'"),
        bad("@ at end", "news@", "nothing after '@'"),
        bad("@ alone", "@", "nothing before '@'"),
        bad(
            "two unquoted @",
            "a@b@example.com",
            "more than one '@' outside quotes",
        ),
    ]
}

fn sorted(mut f: Vec<Flag>) -> Vec<Flag> {
    f.sort();
    f
}

#[test]
fn corpus_is_large_enough() {
    let c = corpus();
    assert!(c.len() >= 70, "{} cases", c.len());
    assert!(c.iter().filter(|c| matches!(c.want, Want::Ok(..))).count() >= 30);
    assert!(c.iter().filter(|c| matches!(c.want, Want::Err(..))).count() >= 30);
}

#[test]
fn every_case_matches() {
    let mut failures = Vec::new();
    for case in corpus() {
        let got = parse_cell(&case.input);
        let fail = match (&case.want, &got) {
            (Want::Ok(norm, flags), Ok(p)) => {
                let m = &p.mailbox;
                let mut why = Vec::new();
                if &m.normalized() != norm {
                    why.push(format!("normalised to {:?}, want {norm:?}", m.normalized()));
                }
                if sorted(p.flags.clone()) != sorted(flags.clone()) {
                    why.push(format!("flags {:?}, want {flags:?}", p.flags));
                }
                if m.is_address_literal() != p.flags.contains(&AddressLiteral) {
                    why.push("address-literal flag disagrees with the domain kind".into());
                }
                if m.domain_name().is_some() == m.is_address_literal() {
                    why.push("domain_name() disagrees with is_address_literal()".into());
                }
                if m.needs_smtputf8() != p.flags.contains(&NeedsSmtputf8) {
                    why.push("needs_smtputf8() disagrees with the flag".into());
                }
                if format!("{}@{}", m.local(), m.domain().as_str()) != m.normalized() {
                    why.push("local()/domain() do not make up normalized()".into());
                }
                // Normalised form is a fixed point: parsing it again gives the same mailbox.
                match parse_cell(&m.normalized()) {
                    Ok(again) if &again.mailbox == m => {}
                    other => why.push(format!("re-parse of normalised form gave {other:?}")),
                }
                (!why.is_empty()).then(|| why.join("; "))
            }
            (Want::Err(frag), Err(e)) => {
                let msg = e.to_string();
                let mut why = Vec::new();
                if !msg.contains(frag.as_str()) {
                    why.push(format!("message {msg:?} lacks {frag:?}"));
                }
                if msg.chars().any(|c| c.is_control()) {
                    why.push(format!("message {msg:?} echoes a control character"));
                }
                if !msg.starts_with(|c: char| c.is_ascii_lowercase()) {
                    why.push(format!("message {msg:?} does not start lower-case"));
                }
                (!why.is_empty()).then(|| why.join("; "))
            }
            (Want::Ok(norm, _), Err(e)) => Some(format!("want {norm:?}, got error: {e}")),
            (Want::Err(frag), Ok(p)) => Some(format!(
                "want error containing {frag:?}, got {:?} {:?}",
                p.mailbox.normalized(),
                p.flags
            )),
        };
        if let Some(f) = fail {
            failures.push(format!("[{}] {:?}: {f}", case.rule, case.input));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Injection attempts are a distinct error kind, so reports can single them out.
#[test]
fn control_characters_are_their_own_error_kind() {
    for input in [
        "a@b.com\r\nRCPT TO:<x@y>",
        "a\0@b.com",
        "\"a\r\nb\"@c.com",
        "a\tb@example.com",
        "a\u{7f}@example.com",
        "a\u{9b}@example.com",
        "  a@example.com\r\n",
    ] {
        match parse_cell(input) {
            Err(AddressError::ControlCharacter { .. }) => {}
            other => panic!("{input:?}: {other:?}"),
        }
    }
    assert!(parse_cell("a@example.com").is_ok());
}

/// The empty cell is its own kind too: input may choose to skip blank rows.
#[test]
fn empty_cells_are_their_own_error_kind() {
    assert_eq!(parse_cell(""), Err(AddressError::Empty));
    assert_eq!(parse_cell(" \u{00A0} "), Err(AddressError::Empty));
    assert!(!matches!(parse_cell("<>"), Err(AddressError::Empty)));
}

/// Cell decorations never change the de-duplication key.
#[test]
fn decorations_share_one_key() {
    let key = |s: &str| parse_cell(s).unwrap().mailbox.normalized();
    let want = "News@example.com";
    for s in [
        "News@example.com",
        " News@EXAMPLE.com",
        "<News@Example.Com>",
        "Team <News@example.COM>",
        "\"Team, A\" <News@example.com> ",
    ] {
        assert_eq!(key(s), want, "{s:?}");
    }
    assert_ne!(
        key("news@example.com"),
        want,
        "local part case must be kept"
    );
}
