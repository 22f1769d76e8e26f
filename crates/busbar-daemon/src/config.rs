//! Daemon configuration: defaults, the TOML file (unknown keys rejected),
//! and command-line overrides.

use std::path::{Path, PathBuf};

use busbar_kernel::KernelConfig;
use busbar_server::{Limits, Privilege};
use serde::Deserialize;

/// Everything the daemon needs to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonConfig {
    /// The socket to serve on.
    pub socket: PathBuf,
    /// Kernel limits (buses, default queue limit, message size).
    pub kernel: KernelConfig,
    /// What one connection and one user may make the daemon hold.
    pub limits: Limits,
    /// Uids besides root and the daemon's own allowed bus-wide powers.
    pub privileged_uids: Vec<u32>,
    /// Primary groups allowed bus-wide powers.
    pub privileged_groups: Vec<u32>,
    /// The socket file's permission bits (default `0o600`: user only).
    pub socket_mode: u32,
    /// The socket file's group, if it should be changed.
    pub socket_group: Option<u32>,
    /// Serve metrics over HTTP on this address (`GET /metrics`); off
    /// unless set.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl DaemonConfig {
    /// Defaults: the given socket path, one bus, kernel defaults, the
    /// default [`Limits`], mode `0600`, only root and the daemon's uid
    /// privileged.
    pub fn new(socket: PathBuf) -> Self {
        let kernel = KernelConfig {
            max_buses: 1024,
            // Several users share a daemon: account by default.
            quota: busbar_kernel::Quota::default(),
            ..KernelConfig::default()
        };
        Self {
            socket,
            limits: Limits {
                max_frame: Limits::frame_for_message_size(kernel.absolute_max_message_size),
                ..Limits::default()
            },
            kernel,
            privileged_uids: Vec::new(),
            privileged_groups: Vec::new(),
            socket_mode: 0o600,
            socket_group: None,
            metrics_listen: None,
        }
    }

    /// Checks that a daemon with this config can serve anyone; the error
    /// names the setting, its value and the allowed range.
    pub fn check(&self) -> Result<(), String> {
        let k = &self.kernel;
        if k.buses == 0 {
            return Err(
                "buses = 0 (--buses or the config file): a daemon needs at least one bus (the default is 1)"
                    .into(),
            );
        }
        if k.buses > k.max_buses {
            return Err(format!(
                "buses = {} (--buses or the config file): a daemon serves at most {} buses",
                k.buses, k.max_buses
            ));
        }
        if k.default_queue_limit == 0 {
            return Err(
                "default_queue_limit = 0: an endpoint must be able to queue at least one message"
                    .into(),
            );
        }
        if k.absolute_max_message_size < busbar_kernel::MIN_MAX_MESSAGE_SIZE
            || k.max_message_size < busbar_kernel::MIN_MAX_MESSAGE_SIZE
            || k.max_message_size > k.absolute_max_message_size
        {
            return Err(format!(
                "max_message_size = {} must lie between {} and absolute_max_message_size ({})",
                k.max_message_size,
                busbar_kernel::MIN_MAX_MESSAGE_SIZE,
                k.absolute_max_message_size
            ));
        }
        k.validate()
            .map_err(|e| format!("the kernel limits are not usable ({})", e.name()))
    }

    /// Who holds bus-wide powers: root, the daemon's uid, and the
    /// configured uids and groups.
    pub fn privilege(&self) -> Privilege {
        Privilege {
            daemon_uid: busbar_sys::effective_uid(),
            uids: self.privileged_uids.clone(),
            gids: self.privileged_groups.clone(),
        }
    }

    /// Applies a TOML config file on top of `self`.
    ///
    /// ```toml
    /// buses = 2                    # buses created at start
    /// default_queue_limit = 100    # queue limit of a new endpoint
    /// max_message_size = 67108864  # bytes (name + data) per message
    /// absolute_max_message_size = 67108864  # the most a bus may be set to
    /// max_connections = 4096      # refused with ENFILE beyond
    /// max_connections_per_uid = 512  # unprivileged users; EUSERS beyond
    /// max_endpoints_per_connection = 4096
    /// max_parked_per_connection = 1024
    /// max_endpoints_per_uid = 16384   # unprivileged users; EMFILE beyond
    /// max_bindings_per_uid = 65536    # unprivileged users; EMFILE beyond
    /// max_fds_per_uid = 16384      # fds held outside the queues
    /// max_partial_bytes_per_uid = 268435456
    /// max_inline_data = 4194304   # larger data must come as a sealed memfd
    /// max_data_memfds_per_uid = 4096  # memfd data held per sending user (EDQUOT)
    /// max_data_memfds = 32768     # memfd data held in all (ENOBUFS)
    /// hello_timeout_ms = 5000
    /// metrics_listen = "127.0.0.1:9464"  # serve GET /metrics (off by default)
    /// privileged_uids = [1000]     # besides root and the daemon's uid
    /// privileged_groups = ["busbar-admin"]
    /// socket_mode = "0660"         # octal permission bits of the socket
    /// socket_group = "busbar"      # group name or number
    /// quota_messages = 65536       # per (receiving user, sending user)
    /// quota_bytes = 268435456
    /// quota_handles = 65536
    /// quota_fds = 4096
    /// ```
    pub fn apply_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        self.apply_toml(&text)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Applies TOML text on top of `self`.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), String> {
        let f: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(n) = f.buses {
            self.kernel.buses = n;
        }
        if let Some(n) = f.default_queue_limit {
            self.kernel.default_queue_limit = n;
        }
        if let Some(n) = f.absolute_max_message_size {
            self.kernel.absolute_max_message_size = n;
            self.kernel.max_message_size = self.kernel.max_message_size.min(n);
        }
        if let Some(n) = f.max_message_size {
            self.kernel.max_message_size = n;
            if f.absolute_max_message_size.is_none() {
                self.kernel.absolute_max_message_size =
                    self.kernel.absolute_max_message_size.max(n);
            }
        }
        self.limits.max_frame =
            Limits::frame_for_message_size(self.kernel.absolute_max_message_size);
        self.kernel
            .validate()
            .map_err(|_| "max_message_size must lie between 100 and absolute_max_message_size (and absolute_max_message_size at least 100)".to_string())?;
        let l = &mut self.limits;
        for (key, value, field) in [
            ("max_connections", f.max_connections, &mut l.max_connections),
            (
                "max_connections_per_uid",
                f.max_connections_per_uid,
                &mut l.max_connections_per_uid,
            ),
            (
                "max_endpoints_per_connection",
                f.max_endpoints_per_connection,
                &mut l.max_endpoints_per_connection,
            ),
            (
                "max_parked_per_connection",
                f.max_parked_per_connection,
                &mut l.max_parked_per_connection,
            ),
            ("max_fds_per_uid", f.max_fds_per_uid, &mut l.max_fds_per_uid),
            (
                "max_endpoints_per_uid",
                f.max_endpoints_per_uid,
                &mut l.max_endpoints_per_uid,
            ),
            (
                "max_bindings_per_uid",
                f.max_bindings_per_uid,
                &mut l.max_bindings_per_uid,
            ),
            (
                "max_partial_bytes_per_uid",
                f.max_partial_bytes_per_uid,
                &mut l.max_partial_bytes_per_uid,
            ),
            ("max_inline_data", f.max_inline_data, &mut l.max_inline_data),
            (
                "max_data_memfds_per_uid",
                f.max_data_memfds_per_uid,
                &mut l.max_data_memfds_per_uid,
            ),
            ("max_data_memfds", f.max_data_memfds, &mut l.max_data_memfds),
        ] {
            if let Some(n) = value {
                if n == 0 {
                    return Err(format!("{key} must be at least 1"));
                }
                *field = n;
            }
        }
        if let Some(a) = f.metrics_listen {
            self.metrics_listen = Some(a.parse().map_err(|_| {
                format!("metrics_listen = {a:?}: give an address and port, e.g. \"127.0.0.1:9464\"")
            })?);
        }
        if let Some(ms) = f.hello_timeout_ms {
            l.hello_timeout = ms.max(1) * 1_000_000;
        }
        self.privileged_uids
            .extend(f.privileged_uids.unwrap_or_default());
        for g in f.privileged_groups.unwrap_or_default() {
            self.privileged_groups.push(resolve_group(&g)?);
        }
        let q = &mut self.kernel.quota;
        q.messages = f.quota_messages.unwrap_or(q.messages);
        q.bytes = f.quota_bytes.unwrap_or(q.bytes);
        q.handles = f.quota_handles.unwrap_or(q.handles);
        q.fds = f.quota_fds.unwrap_or(q.fds);
        if let Some(m) = f.socket_mode {
            self.socket_mode = u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| format!("socket_mode {m:?} is not an octal mode like \"0660\""))?;
        }
        if let Some(g) = f.socket_group {
            self.socket_group = Some(resolve_group(&g)?);
        }
        self.kernel.validate().map_err(|_| {
            "inconsistent limits (queue limit ≥ 1, message size ≥ 100, buses ≤ 1024)".to_string()
        })
    }
}

/// A group by number or name.
fn resolve_group(g: &str) -> Result<u32, String> {
    match g.parse::<u32>() {
        Ok(n) => Ok(n),
        Err(_) => busbar_sys::group_id(g)
            .map_err(|e| format!("cannot read /etc/group: {e}"))?
            .ok_or_else(|| format!("no group named {g:?}")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    buses: Option<u32>,
    default_queue_limit: Option<u32>,
    max_message_size: Option<u32>,
    absolute_max_message_size: Option<u32>,
    max_connections: Option<usize>,
    max_connections_per_uid: Option<usize>,
    max_endpoints_per_connection: Option<usize>,
    max_parked_per_connection: Option<usize>,
    max_endpoints_per_uid: Option<usize>,
    max_bindings_per_uid: Option<usize>,
    max_fds_per_uid: Option<usize>,
    max_partial_bytes_per_uid: Option<usize>,
    max_inline_data: Option<usize>,
    max_data_memfds_per_uid: Option<usize>,
    max_data_memfds: Option<usize>,
    hello_timeout_ms: Option<u64>,
    metrics_listen: Option<String>,
    privileged_uids: Option<Vec<u32>>,
    privileged_groups: Option<Vec<String>>,
    socket_mode: Option<String>,
    socket_group: Option<String>,
    quota_messages: Option<u32>,
    quota_bytes: Option<u64>,
    quota_handles: Option<u32>,
    quota_fds: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_applies_and_unknown_keys_are_rejected() {
        let mut c = DaemonConfig::new("/x".into());
        c.apply_toml("buses = 3\ndefault_queue_limit = 7\nsocket_mode = \"0660\"\nsocket_group = \"0\"\nmax_connections = 9\nquota_messages = 5\nquota_fds = 2\nmax_connections_per_uid = 3\nhello_timeout_ms = 250\nprivileged_uids = [1234]\nprivileged_groups = [\"0\"]")
            .unwrap();
        assert_eq!((c.kernel.quota.messages, c.kernel.quota.fds), (5, 2));
        assert_eq!(
            c.kernel.quota.handles,
            busbar_kernel::Quota::default().handles
        );
        assert_eq!(c.kernel.buses, 3);
        assert_eq!(c.kernel.default_queue_limit, 7);
        assert_eq!(c.socket_mode, 0o660);
        assert_eq!(c.socket_group, Some(0));
        assert_eq!(c.limits.max_connections, 9);
        assert_eq!(c.limits.max_connections_per_uid, 3);
        assert_eq!(c.limits.hello_timeout, 250_000_000);
        assert!(c.privilege().allows(&busbar_kernel::Credentials {
            pid: 1,
            uid: 1234,
            gid: 99
        }));
        assert!(c.privilege().allows(&busbar_kernel::Credentials {
            pid: 1,
            uid: 4321,
            gid: 0
        }));
        assert!(c.apply_toml("max_parked_per_connection = 0").is_err());
        assert!(c.apply_toml("bogus = 1").unwrap_err().contains("bogus"));
        assert!(c.apply_toml("socket_mode = \"999\"").is_err());
        assert!(c.apply_toml("default_queue_limit = 0").is_err());
        assert!(
            c.apply_toml("socket_group = \"no-such-group-here\"")
                .is_err()
        );
    }

    #[test]
    fn absolute_max_message_size() {
        let mut c = DaemonConfig::new("/x".into());
        c.apply_toml("absolute_max_message_size = 409600").unwrap();
        assert_eq!(
            (
                c.kernel.max_message_size,
                c.kernel.absolute_max_message_size
            ),
            (409_600, 409_600)
        );
        assert!(c.apply_toml("max_message_size = 500000").is_ok());
        assert_eq!(c.kernel.absolute_max_message_size, 500_000);
        assert!(
            c.apply_toml("absolute_max_message_size = 200\nmax_message_size = 300")
                .is_err()
        );
    }
}
