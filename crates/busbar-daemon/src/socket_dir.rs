//! The socket and its directory, made so another local user cannot squat,
//! hijack or redirect them.
//!
//! - Missing directories on the way to the socket are created mode `0700`
//!   (one at a time, never through a symbolic link).
//! - The directory holding the socket must be a real directory (not a
//!   link), owned by the daemon's uid, and not writable by others, nor by
//!   its group unless that group is the configured `socket_group`.
//!   Otherwise the daemon refuses to start and says why.
//! - A stale socket file is replaced only if nothing answers on it; the
//!   socket's mode and group are set without following links.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

fn refuse(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, msg)
}

/// `e` with what was being done to which path in front (same kind).
fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Creates `dir` and its missing parents, each mode 0700.
fn create_dirs(dir: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dirs(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

/// Checks the directory that will hold the socket (see the module docs).
pub(crate) fn check_dir(dir: &Path, uid: u32, group: Option<u32>) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    let shown = dir.display();
    if meta.file_type().is_symlink() {
        return Err(refuse(format!(
            "{shown} is a symbolic link; refusing to put the socket behind it (remove it, or choose another --socket)"
        )));
    }
    if !meta.is_dir() {
        return Err(refuse(format!("{shown} is not a directory")));
    }
    if meta.uid() != uid {
        return Err(refuse(format!(
            "{shown} belongs to uid {}, not to this daemon's uid {uid}: another user may have planted it; remove it or choose another --socket",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    let group_ok = group == Some(meta.gid());
    if mode & 0o002 != 0 || (mode & 0o020 != 0 && !group_ok) {
        return Err(refuse(format!(
            "{shown} is writable by {} (mode {mode:04o}); make it 0700 (or 0770 with socket_group) or choose another --socket",
            if mode & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            }
        )));
    }
    Ok(())
}

/// Binds `path`: creates or checks its directory, replaces a stale socket
/// file, refuses if a live daemon answers there.
pub(crate) fn bind_socket(path: &Path, mode: u32, group: Option<u32>) -> io::Result<UnixListener> {
    let uid = busbar_sys::effective_uid();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dirs(dir).map_err(|e| {
            context(
                e,
                format!("cannot create the socket directory {}", dir.display()),
            )
        })?;
        check_dir(dir, uid, group).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => e,
            _ => context(
                e,
                format!("cannot check the socket directory {}", dir.display()),
            ),
        })?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::other(format!(
                "{} exists and is not a socket; not replacing it",
                path.display()
            )));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a busbar daemon is already running at {}", path.display()),
            ));
        }
        tracing::info!(path = %path.display(), "replacing stale socket file");
        std::fs::remove_file(path).map_err(|e| {
            context(
                e,
                format!("cannot remove the stale socket {}", path.display()),
            )
        })?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| context(e, format!("cannot bind the socket {}", path.display())))?;
    busbar_sys::set_mode(path, mode)
        .map_err(|e| context(e, format!("cannot set the mode of {}", path.display())))?;
    if let Some(g) = group {
        busbar_sys::set_group(path, g)
            .map_err(|e| context(e, format!("cannot set the group of {}", path.display())))?;
    }
    listener.set_nonblocking(true)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("busbar-sockdir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn missing_dirs_are_created_0700_and_open_ones_refused() {
        let uid = busbar_sys::effective_uid();
        let root = scratch("create");
        let dir = root.join("a/b");
        create_dirs(&dir).unwrap();
        for d in [&root, &root.join("a"), &dir] {
            assert_eq!(
                std::fs::metadata(d).unwrap().mode() & 0o777,
                0o700,
                "{}",
                d.display()
            );
        }
        check_dir(&dir, uid, None).unwrap();
        busbar_sys::set_mode(&dir, 0o777).unwrap();
        let e = check_dir(&dir, uid, None).unwrap_err();
        assert!(e.to_string().contains("writable by everyone"), "{e}");
        busbar_sys::set_mode(&dir, 0o770).unwrap();
        assert!(check_dir(&dir, uid, None).is_err());
        let gid = std::fs::metadata(&dir).unwrap().gid();
        check_dir(&dir, uid, Some(gid)).unwrap();
        let e = check_dir(&dir, uid.wrapping_add(1), None).unwrap_err();
        assert!(e.to_string().contains("belongs to uid"), "{e}");
        let link = root.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(
            check_dir(&link, uid, None)
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );
        assert!(
            busbar_sys::set_mode(&link, 0o600).is_err(),
            "chmod must not follow links"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
