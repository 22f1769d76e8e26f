//! Message names and Zenoh key expressions.
//!
//! Messages travel under `busbar/NS/...`: the name `$.a.b.c` is the key
//! `busbar/NS/a/b/c`, the listener pattern `$.a.*` (one or more words) is
//! `busbar/NS/a/**` and `$.a.%` (exactly one word) is `busbar/NS/a/*`.
//! (`**` also matches zero words; the receiving bus does the final match, so
//! the wider key only costs a sample nobody takes.)
//!
//! The bridges' own keys live under `busbar-bridge/NS/<network id>/`:
//!
//! - `alive/<zenoh id>`: a liveliness token per running bridge;
//! - `replier/<pattern in hex>` and `listener/<pattern in hex>`: a
//!   liveliness token per replier and per listener pattern on that bridge's
//!   bus (hex, because a pattern's `*` and `%` are not key characters);
//! - `request/<name as a key path>`: the bridge's queryable, which takes
//!   requests for its bus's repliers.

use busbar::name::{PatternKind, parse_pattern};

/// What a binding advertised to other bridges is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A replier: other bridges bind a proxy for it.
    Replier,
    /// A listener: other bridges' taps listen for it.
    Listener,
}

impl Role {
    fn chunk(self) -> &'static str {
        match self {
            Self::Replier => "replier",
            Self::Listener => "listener",
        }
    }
}

/// The key expressions of one namespace.
#[derive(Clone, Debug)]
pub struct Keys {
    ns: String,
}

/// Why a namespace was refused.
pub const NAMESPACE_RULE: &str =
    "a namespace is 1 to 64 ASCII letters, digits, '-' or '_' (it becomes one key chunk)";

impl Keys {
    /// The keys of namespace `ns`.
    pub fn new(ns: &str) -> Result<Self, String> {
        let ok = !ns.is_empty()
            && ns.len() <= 64
            && ns
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self { ns: ns.to_owned() })
        } else {
            Err(format!("bad namespace {ns:?}: {NAMESPACE_RULE}"))
        }
    }

    /// The key of a message name (`$.a.b` → `busbar/NS/a/b`). The name must
    /// be valid.
    pub fn name(&self, name: &str) -> String {
        let words = name.strip_prefix("$.").unwrap_or(name);
        format!("busbar/{}/{}", self.ns, words.replace('.', "/"))
    }

    /// The key expression of a binding pattern (valid).
    pub fn pattern(&self, pattern: &str) -> String {
        let Ok(p) = parse_pattern(pattern) else {
            return self.name(pattern);
        };
        let wild = match p.kind {
            PatternKind::Exact => return self.name(pattern),
            PatternKind::OneWord => "*",
            PatternKind::AnyWords => "**",
        };
        match p.prefix.strip_prefix("$.") {
            Some(words) => format!("busbar/{}/{}/{wild}", self.ns, words.replace('.', "/")),
            None => format!("busbar/{}/{wild}", self.ns),
        }
    }

    /// The liveliness token of a running bridge.
    pub fn alive(&self, network: u32, zid: &str) -> String {
        format!("busbar-bridge/{}/{network}/alive/{zid}", self.ns)
    }

    /// Every bridge token with this network id.
    pub fn alive_any(&self, network: u32) -> String {
        format!("busbar-bridge/{}/{network}/alive/*", self.ns)
    }

    /// The liveliness token of a `role` binding on bridge `network`'s bus.
    pub fn binding(&self, role: Role, network: u32, pattern: &str) -> String {
        format!(
            "busbar-bridge/{}/{network}/{}/{}",
            self.ns,
            role.chunk(),
            hex(pattern.as_bytes())
        )
    }

    /// Every `role` token of the namespace.
    pub fn bindings(&self, role: Role) -> String {
        format!("busbar-bridge/{}/*/{}/*", self.ns, role.chunk())
    }

    /// The network id and pattern a `role` token stands for.
    pub fn parse_binding(&self, role: Role, key: &str) -> Option<(u32, String)> {
        let rest = key
            .strip_prefix("busbar-bridge/")?
            .strip_prefix(self.ns.as_str())?
            .strip_prefix('/')?;
        let (net, rest) = rest.split_once('/')?;
        let hexed = rest.strip_prefix(role.chunk())?.strip_prefix('/')?;
        let network = net.parse::<u32>().ok().filter(|&n| n != 0)?;
        let pattern = String::from_utf8(unhex(hexed)?).ok()?;
        parse_pattern(&pattern).ok()?;
        Some((network, pattern))
    }

    /// The key a request for `name` is sent to, at bridge `network`.
    pub fn request(&self, network: u32, name: &str) -> String {
        let words = name.strip_prefix("$.").unwrap_or(name);
        format!(
            "busbar-bridge/{}/{network}/request/{}",
            self.ns,
            words.replace('.', "/")
        )
    }

    /// The key expression of bridge `network`'s queryable.
    pub fn requests(&self, network: u32) -> String {
        format!("busbar-bridge/{}/{network}/request/**", self.ns)
    }

    /// The message name a request key stands for, at bridge `network`.
    pub fn name_of_request(&self, network: u32, key: &str) -> Option<String> {
        let prefix = format!("busbar-bridge/{}/{network}/request/", self.ns);
        let words = key.strip_prefix(prefix.as_str())?;
        Some(format!("$.{}", words.replace('/', ".")))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_patterns() {
        let k = Keys::new("lab").unwrap();
        assert_eq!(k.name("$.a.b.c"), "busbar/lab/a/b/c");
        assert_eq!(k.pattern("$.a.b"), "busbar/lab/a/b");
        assert_eq!(k.pattern("$.a.*"), "busbar/lab/a/**");
        assert_eq!(k.pattern("$.a.%"), "busbar/lab/a/*");
        assert_eq!(k.pattern("$.*"), "busbar/lab/**");
        assert_eq!(k.pattern("$.%"), "busbar/lab/*");
    }

    #[test]
    fn binding_tokens_round_trip() {
        let k = Keys::new("ns_1").unwrap();
        for p in ["$.a", "$.a.*", "$.a.b.%", "$.*"] {
            for role in [Role::Replier, Role::Listener] {
                let key = k.binding(role, 7, p);
                assert_eq!(
                    k.parse_binding(role, &key),
                    Some((7, p.to_owned())),
                    "{key}"
                );
            }
            let key = k.binding(Role::Replier, 7, p);
            assert_eq!(k.parse_binding(Role::Listener, &key), None);
        }
        let parse = |key| k.parse_binding(Role::Replier, key);
        assert_eq!(parse("busbar-bridge/ns_1/0/replier/2e"), None);
        assert_eq!(parse("busbar-bridge/ns_1/3/replier/zz"), None);
        assert_eq!(parse("busbar-bridge/ns_1/3/replier/242e"), None);
    }

    #[test]
    fn request_keys() {
        let k = Keys::new("n").unwrap();
        let key = k.request(4, "$.svc.time");
        assert_eq!(key, "busbar-bridge/n/4/request/svc/time");
        assert_eq!(k.name_of_request(4, &key).as_deref(), Some("$.svc.time"));
        assert_eq!(k.name_of_request(5, &key), None);
    }

    #[test]
    fn namespaces() {
        assert!(Keys::new("robot-1_a").is_ok());
        for bad in ["", "a/b", "a*", "ü", &"x".repeat(65)] {
            assert!(Keys::new(bad).is_err(), "{bad}");
        }
    }
}
