//! `TCP_NODELAY` on the process's database sockets.
//!
//! sqlx 0.9.0 no longer disables Nagle's algorithm on its TCP sockets
//! (launchbadge/sqlx#4335, a regression of #4022; fixed by #4336, not yet
//! in a release this project can use). Every client library of the field
//! sets it, libpq included, because Nagle's algorithm holds back a small
//! write while earlier data is unacknowledged, and the server's delayed
//! acknowledgement then stalls the exchange. Userfeed meets that on every
//! `COPY`: sqlx sends the rows, then `CopyDone` as a separate small write.
//! Measured on a 100,000-row file: staging took 1.06 s over TCP and 0.77 s
//! over a Unix socket; with this workaround, TCP matches the Unix socket.
//!
//! sqlx exposes no socket option, so after each new connection this sets
//! the option on every TCP socket of the process whose peer is the database
//! port (idempotent, and harmless on any other socket that might match).
//! Remove this module once the sqlx release with #4336 is in `Cargo.lock`.

use std::os::fd::BorrowedFd;

/// Sets `TCP_NODELAY` on each TCP socket of this process connected to a
/// peer on `port`; returns how many it set. Linux only (it lists
/// `/proc/self/fd`); elsewhere it does nothing.
pub fn set_on_sockets_to(port: u16) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut set = 0;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // Only sockets: the link reads "socket:[inode]". Cheap, and it
        // keeps the socket calls below off files, pipes and the like.
        let is_socket = std::fs::read_link(entry.path())
            .map(|t| t.to_string_lossy().starts_with("socket:"))
            .unwrap_or(false);
        if !is_socket {
            continue;
        }
        // SAFETY: `fd` was open a moment ago in this process; it is only
        // borrowed for the calls below. If another thread closed it (and
        // the number was reused) in between, the calls fail or apply a
        // harmless option to a socket whose peer port also matched.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&fd);
        let to_port = sock
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.port() == port);
        if to_port && sock.set_tcp_nodelay(true).is_ok() {
            set += 1;
        }
    }
    set
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn sets_nodelay_on_a_socket_connected_to_the_port_and_leaves_others() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ours = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let theirs = tokio::net::TcpStream::connect(other.local_addr().unwrap())
            .await
            .unwrap();
        assert!(!ours.nodelay().unwrap(), "Nagle is on by default");
        assert!(set_on_sockets_to(port) >= 1);
        assert!(ours.nodelay().unwrap());
        assert!(!theirs.nodelay().unwrap());
    }
}
