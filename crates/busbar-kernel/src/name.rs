//! Message names and binding patterns.
//!
//! A name is `$.` followed by dot-separated words of ASCII letters and digits,
//! at most [`MAX_NAME_LEN`] bytes, case-sensitive. A *binding* may end in a
//! wildcard word: `*` matches one or more further words, `%` exactly one.
//!
//! Errors: longer than [`MAX_NAME_LEN`] gives `ENAMETOOLONG` (checked first);
//! anything else malformed, or a wildcard where a message name is required,
//! gives `EBADMSG`.

use crate::Errno;

/// The longest name (message or binding), in bytes.
pub const MAX_NAME_LEN: usize = 1000;

/// What kind of binding a pattern is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternKind {
    /// No wildcard: matches exactly one name.
    Exact,
    /// Ends in `.%`: matches names exactly one word below the prefix.
    OneWord,
    /// Ends in `.*`: matches names one or more words below the prefix.
    AnyWords,
}

/// A parsed binding pattern. For wildcards, `prefix` is the pattern without
/// its final `.*` or `.%` (so `$.*` has prefix `$`); for exact names it is the
/// whole name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pattern<'a> {
    /// Exact, `%` or `*`.
    pub kind: PatternKind,
    /// The part of the pattern before the wildcard word.
    pub prefix: &'a str,
}

fn check(name: &str, allow_wildcard: bool) -> Result<PatternKind, Errno> {
    let bytes = name.as_bytes();
    if bytes.len() > MAX_NAME_LEN {
        return Err(Errno::ENAMETOOLONG);
    }
    if bytes.len() < 3 || bytes[0] != b'$' || bytes[1] != b'.' {
        return Err(Errno::EBADMSG);
    }
    let mut word_len = 0usize;
    let mut kind = PatternKind::Exact;
    for (i, &b) in bytes[2..].iter().enumerate() {
        if kind != PatternKind::Exact {
            // A wildcard must be the whole final word.
            return Err(Errno::EBADMSG);
        }
        match b {
            b'.' => {
                if word_len == 0 {
                    return Err(Errno::EBADMSG);
                }
                word_len = 0;
            }
            b'*' | b'%' if allow_wildcard && word_len == 0 => {
                let at_end = i + 2 == bytes.len() - 1;
                if !at_end {
                    return Err(Errno::EBADMSG);
                }
                kind = if b == b'*' {
                    PatternKind::AnyWords
                } else {
                    PatternKind::OneWord
                };
            }
            b if b.is_ascii_alphanumeric() => word_len += 1,
            _ => return Err(Errno::EBADMSG),
        }
    }
    if kind == PatternKind::Exact && word_len == 0 {
        return Err(Errno::EBADMSG);
    }
    Ok(kind)
}

/// Byte classes for [`check_message_name`]: 0 invalid, 1 letter or digit, 2 dot.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = if b.is_ascii_alphanumeric() {
            1
        } else if b == b'.' {
            2
        } else {
            0
        };
        c += 1;
    }
    t
};

/// Checks a name a message can be sent to (no wildcards). This runs on
/// every send, so it is one table lookup per byte with no branches; it
/// accepts exactly what the general grammar check accepts (a unit test
/// compares them exhaustively on short strings).
pub fn check_message_name(name: &str) -> Result<(), Errno> {
    let b = name.as_bytes();
    if b.len() > MAX_NAME_LEN {
        return Err(Errno::ENAMETOOLONG);
    }
    if b.len() < 3 || b[0] != b'$' || b[1] != b'.' {
        return Err(Errno::EBADMSG);
    }
    // `prev` starts as "dot" so a leading dot is caught as an empty word.
    let mut prev = 2u8;
    let mut bad = 0u8;
    for &c in &b[2..] {
        let k = CLASS[c as usize];
        // Invalid byte, or a dot right after a dot.
        bad |= (k == 0) as u8 | (k & prev & 2);
        prev = k;
    }
    if bad != 0 || prev == 2 {
        return Err(Errno::EBADMSG);
    }
    Ok(())
}

/// Parses a binding pattern (a name whose last word may be `*` or `%`).
pub fn parse_pattern(name: &str) -> Result<Pattern<'_>, Errno> {
    let kind = check(name, true)?;
    let prefix = match kind {
        PatternKind::Exact => name,
        _ => &name[..name.len() - 2],
    };
    Ok(Pattern { kind, prefix })
}

/// Does `pattern` match the (valid, wildcard-free) message name `name`?
/// The reference definition that the binding index must agree with.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let Ok(p) = parse_pattern(pattern) else {
        return false;
    };
    match p.kind {
        PatternKind::Exact => p.prefix == name,
        PatternKind::AnyWords => {
            name.len() > p.prefix.len() + 1
                && name.starts_with(p.prefix)
                && name.as_bytes()[p.prefix.len()] == b'.'
        }
        PatternKind::OneWord => {
            name.len() > p.prefix.len() + 1
                && name.starts_with(p.prefix)
                && name.as_bytes()[p.prefix.len()] == b'.'
                && !name[p.prefix.len() + 1..].contains('.')
        }
    }
}

/// The prefixes under which `*` bindings could match `name`, longest first:
/// for `$.a.b.c` these are `$.a.b`, `$.a`, `$`.
pub(crate) fn any_words_prefixes(name: &str) -> impl Iterator<Item = &str> {
    name.bytes()
        .enumerate()
        .rev()
        .filter(|&(_, b)| b == b'.')
        .map(move |(i, _)| &name[..i])
}

/// The prefix under which a `%` binding could match `name`: its parent.
pub(crate) fn parent(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) => &name[..i],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for n in [
            "$.X",
            "$.Fred",
            "$.a.b.c",
            "$.KBUS.Replier.GoneAway",
            "$.A1.b2",
        ] {
            assert_eq!(check_message_name(n), Ok(()), "{n}");
        }
        let long = format!("$.{}", "a".repeat(MAX_NAME_LEN - 2));
        assert_eq!(check_message_name(&long), Ok(()));
        let too_long = format!("$.{}", "a".repeat(MAX_NAME_LEN - 1));
        assert_eq!(check_message_name(&too_long), Err(Errno::ENAMETOOLONG));
    }

    #[test]
    fn invalid_names() {
        for n in [
            "", "$", "$.", "$..a", "$.a.", "$.a..b", "a.b", "$a", "$.a-b", "$.a_b", "$.a b", "$.*",
            "$.%", "$.a.*", "$.é",
        ] {
            assert_eq!(check_message_name(n), Err(Errno::EBADMSG), "{n:?}");
        }
    }

    #[test]
    fn fast_check_agrees_with_grammar() {
        let alphabet = [b'$', b'.', b'a', b'Z', b'0', b'*', b'%', b'-', b' '];
        // Every string of up to 6 bytes over a small alphabet.
        let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
        while let Some(v) = stack.pop() {
            let s = std::str::from_utf8(&v).unwrap();
            assert_eq!(check_message_name(s), check(s, false).map(|_| ()), "{s:?}");
            if v.len() < 6 {
                for &c in &alphabet {
                    let mut w = v.clone();
                    w.push(c);
                    stack.push(w);
                }
            }
        }
    }

    #[test]
    fn patterns() {
        assert_eq!(
            parse_pattern("$.*"),
            Ok(Pattern {
                kind: PatternKind::AnyWords,
                prefix: "$"
            })
        );
        assert_eq!(
            parse_pattern("$.a.%"),
            Ok(Pattern {
                kind: PatternKind::OneWord,
                prefix: "$.a"
            })
        );
        assert_eq!(
            parse_pattern("$.a"),
            Ok(Pattern {
                kind: PatternKind::Exact,
                prefix: "$.a"
            })
        );
        for n in [
            "$.a*", "$.*.a", "$.a.**", "$.a.*%", "$.%a", "$.a.*.", "*", "$.a.b*",
        ] {
            assert_eq!(parse_pattern(n), Err(Errno::EBADMSG), "{n:?}");
        }
    }

    #[test]
    fn matching() {
        assert!(pattern_matches("$.*", "$.a"));
        assert!(pattern_matches("$.*", "$.a.b"));
        assert!(pattern_matches("$.a.*", "$.a.b.c"));
        assert!(!pattern_matches("$.a.*", "$.a"));
        assert!(!pattern_matches("$.a.*", "$.ab.c"));
        assert!(pattern_matches("$.a.%", "$.a.b"));
        assert!(!pattern_matches("$.a.%", "$.a.b.c"));
        assert!(!pattern_matches("$.a.%", "$.a"));
        assert!(pattern_matches("$.a", "$.a"));
        assert!(!pattern_matches("$.a", "$.A"));
    }

    #[test]
    fn prefixes() {
        let v: Vec<_> = any_words_prefixes("$.a.b.c").collect();
        assert_eq!(v, ["$.a.b", "$.a", "$"]);
        assert_eq!(parent("$.a.b"), "$.a");
        assert_eq!(parent("$.a"), "$");
    }
}
