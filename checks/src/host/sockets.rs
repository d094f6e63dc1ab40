//! The sockets a running machine listens on, asked of the kernel through
//! the sock_diag netlink interface (sock_diag(7)).
//!
//! /proc/net/tcp answers the same question, but every read of it walks the
//! kernel's whole connection table (a millisecond or more per read on a
//! busy host, for each of tcp and tcp6), where sock_diag is given the
//! states wanted and walks only the listening sockets.

use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr};

/// A transport protocol whose sockets can be listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP sockets in the LISTEN state.
    Tcp,
    /// UDP sockets bound and not connected to a peer.
    Udp,
}

/// One socket waiting for peers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bound {
    /// The local address.
    pub addr: IpAddr,
    /// The local port.
    pub port: u16,
    /// The socket's inode (what /proc/PID/fd links name).
    pub inode: u64,
}

/// The sockets of one transport and address family that wait for peers,
/// sorted. An error names what the kernel refused: a kernel built without
/// `inet_diag`/`udp_diag` answers `ENOENT`, and the caller may fall back to
/// /proc/net.
pub fn bound(transport: Transport, v6: bool) -> std::io::Result<Vec<Bound>> {
    let (protocol, states) = match transport {
        Transport::Tcp => (IPPROTO_TCP, StateFlags::LISTEN),
        // An unconnected UDP socket is in TCP_CLOSE, as /proc/net/udp's 07.
        Transport::Udp => (IPPROTO_UDP, StateFlags::CLOSE),
    };
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family: if v6 { AF_INET6 } else { AF_INET },
            protocol,
            extensions: ExtensionFlags::empty(),
            states,
            socket_id: if v6 {
                SocketId::new_v6()
            } else {
                SocketId::new_v4()
            },
        })
        .into(),
    );
    request.finalize();
    let mut bytes = vec![0; request.buffer_len()];
    request.serialize(&mut bytes);
    socket.send(&bytes, 0)?;

    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        if n == 0 {
            return Err(invalid(
                "sock_diag: the kernel closed the dump early".into(),
            ));
        }
        if n == buf.len() {
            return Err(invalid(
                "sock_diag: a reply filled the whole buffer (truncated)".into(),
            ));
        }
        let mut offset = 0;
        while offset < n {
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(&buf[offset..n])
                .map_err(|e| invalid(format!("sock_diag: malformed reply: {e}")))?;
            let length = message.header.length as usize;
            match message.payload {
                // A dump that failed part-way ends with its errno in DONE:
                // what came before is not the whole table.
                NetlinkPayload::Done(done) if done.code < 0 => {
                    return Err(std::io::Error::from_raw_os_error(-done.code));
                }
                NetlinkPayload::Done(_) => {
                    out.sort();
                    out.dedup();
                    return Ok(out);
                }
                NetlinkPayload::Error(e) => {
                    return Err(match e.code {
                        Some(code) => std::io::Error::from_raw_os_error(-code.get()),
                        None => invalid("sock_diag: an error reply without a code".into()),
                    });
                }
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                    let id = &r.header.socket_id;
                    let unconnected =
                        id.destination_port == 0 && id.destination_address.is_unspecified();
                    if transport == Transport::Tcp || unconnected {
                        out.push(Bound {
                            addr: id.source_address,
                            port: id.source_port,
                            inode: u64::from(r.header.inode),
                        });
                    }
                }
                _ => {}
            }
            if length == 0 {
                return Err(invalid("sock_diag: a reply of length 0".into()));
            }
            // Messages in one datagram start at 4-byte boundaries.
            offset += (length + 3) & !3;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_this_test_listens_on_is_listed_and_a_connected_one_is_not() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp_port = udp.local_addr().unwrap().port();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.connect(udp.local_addr().unwrap()).unwrap();
        let peer_port = peer.local_addr().unwrap().port();
        let listed = bound(Transport::Tcp, false).unwrap();
        assert!(
            listed
                .iter()
                .any(|b| b.port == port && b.addr == IpAddr::from([127, 0, 0, 1]) && b.inode > 0),
            "{listed:?}"
        );
        let listed = bound(Transport::Udp, false).unwrap();
        assert!(listed.iter().any(|b| b.port == udp_port), "{listed:?}");
        assert!(!listed.iter().any(|b| b.port == peer_port), "{listed:?}");
    }
}
