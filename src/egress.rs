//! Forward proxies whose exit is the gateway (SOCKS5, HTTP CONNECT, UDP datagrams), and the
//! policy deciding which destinations they may reach, so that an agent cannot use the gateway
//! to reach into the gateway's own network (SSRF).
//!
//! # Decisions
//!
//! For each connection or datagram target, in this order; the first refusal ends it:
//!
//! 1. **Port**: a denied port is refused; with an allowed-ports list, so is any port not on it.
//! 2. **Name** (when the client sent one): a deny name rule refuses it; an allow name rule lets
//!    its addresses skip the fallback (step 3's last part), but not the deny networks.
//! 3. **Every resolved address** (IPv4-mapped IPv6 counts as its IPv4 address): a deny network
//!    refuses it; an allow network admits it; then the [`Fallback`] decides. `Public` admits
//!    the public internet only: loopback, private, link-local (cloud metadata), multicast and
//!    reserved ranges, NAT64 and 6to4 addresses embedding them, and this machine's own
//!    addresses are refused.
//!
//! Denied addresses are dropped; the rest are dialled in the resolver's order, and only those
//! exact addresses: the name is never resolved twice, so it cannot answer differently to the
//! check and to the connect (DNS rebinding).
//!
//! # Layout
//!
//! - [`policy`]: rules, port ranges and the checks; pure, no I/O but reading this machine's
//!   addresses once.
//! - [`dial`](mod@dial): check, resolve, check, connect.
//! - [`address`], [`datagram`]: destinations as SOCKS5 writes them, and UDP datagrams framed
//!   on a tunnel stream.
//! - [`association`]: a UDP association on the exit side, its two directions apart.
//! - [`exit`]: the exit side (the gateway, or an agent named in `via`): dial under the policy,
//!   answer, then carry the bytes or the datagrams.

pub mod address;
pub mod association;
pub mod datagram;
pub mod dial;
pub mod exit;
pub mod policy;

pub(crate) use dial::dial;
