//! Concurrent connections per client address, per client network and in total.
//!
//! A connection is admitted when its address holds fewer than `per_address`, its network
//! (the address masked to `ipv4_prefix`/`ipv6_prefix` bits) fewer than `per_network`, and
//! the listener fewer than `total`. The last `total / 10` slots are a fair-share reserve: only
//! a network that holds fewer than [`NEWCOMER_ALLOWANCE`] connections may take one, so
//! clients that filled the rest (many idle sessions from a few networks) cannot lock out a
//! newcomer, and an attacker needs many networks to use up the reserve too. The permit frees its
//! slot when dropped, wherever the connection ends up (an upgraded WebSocket included).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use super::log::{DEFAULT_INTERVAL, LogThrottle};

/// Connections a network may hold and still take a slot of the fair-share reserve: a new
/// client (a browser opens a few connections at once; a closed one may not be released yet
/// when the next arrives).
pub const NEWCOMER_ALLOWANCE: usize = 4;

/// The caps of one limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub total: usize,
    pub per_address: usize,
    pub per_network: usize,
    /// Leading bits of an IPv4 address that name its network (24: a /24).
    pub ipv4_prefix: u8,
    /// Leading bits of an IPv6 address that name its network (64: a /64, one site's LAN).
    pub ipv6_prefix: u8,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client's address holds `per_address` connections.
    Address,
    /// The client's network holds `per_network` connections.
    Network,
    /// All slots are taken, or only the fair-share reserve is left and the client's network
    /// already holds connections.
    Total,
}

impl Refusal {
    /// A short name for structured logs.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Address => "per_address",
            Refusal::Network => "per_network",
            Refusal::Total => "total",
        }
    }

    /// Whether the client itself is over its share (rather than the server being full).
    pub fn is_client_share(self) -> bool {
        !matches!(self, Refusal::Total)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Refusal::Address => "too many connections from your address",
            Refusal::Network => "too many connections from your network",
            Refusal::Total => "too many connections",
        })
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    addresses: HashMap<IpAddr, usize>,
    networks: HashMap<IpAddr, usize>,
}

pub struct ConnectionLimiter {
    limits: ConnectionLimits,
    reserve: usize,
    counts: Mutex<Counts>,
    refusal_logs: [LogThrottle; 3],
}

/// A held connection slot; dropping it frees the slot.
pub struct ConnectionPermit {
    limiter: Arc<ConnectionLimiter>,
    address: IpAddr,
    network: IpAddr,
}

impl fmt::Debug for ConnectionPermit {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ConnectionPermit")
            .field("address", &self.address)
            .finish()
    }
}

/// `address` with all but its first `bits` bits cleared.
fn mask(address: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(ipv4_prefix.min(32));
            let keep = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & keep))
        }
        IpAddr::V6(v6) => {
            let bits = u32::from(ipv6_prefix.min(128));
            let keep = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & keep))
        }
    }
}

impl ConnectionLimiter {
    pub fn new(limits: ConnectionLimits) -> Arc<ConnectionLimiter> {
        Arc::new(ConnectionLimiter {
            limits,
            reserve: limits.total / 10,
            counts: Mutex::new(Counts::default()),
            refusal_logs: [
                LogThrottle::new(DEFAULT_INTERVAL),
                LogThrottle::new(DEFAULT_INTERVAL),
                LogThrottle::new(DEFAULT_INTERVAL),
            ],
        })
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// The network `address` belongs to (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn network_of(&self, address: IpAddr) -> IpAddr {
        mask(
            address.to_canonical(),
            self.limits.ipv4_prefix,
            self.limits.ipv6_prefix,
        )
    }

    /// A slot for a connection from `address`, or why there is none.
    pub fn try_acquire(self: &Arc<Self>, address: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let address = address.to_canonical();
        let network = self.network_of(address);
        let mut counts = self.lock();
        let held_by_address = counts.addresses.get(&address).copied().unwrap_or(0);
        let held_by_network = counts.networks.get(&network).copied().unwrap_or(0);
        if held_by_address >= self.limits.per_address {
            return Err(Refusal::Address);
        }
        if held_by_network >= self.limits.per_network {
            return Err(Refusal::Network);
        }
        let shared = self.limits.total.saturating_sub(self.reserve);
        let full = counts.total >= self.limits.total;
        if full || (counts.total >= shared && held_by_network >= NEWCOMER_ALLOWANCE) {
            return Err(Refusal::Total);
        }
        counts.total += 1;
        *counts.addresses.entry(address).or_insert(0) += 1;
        *counts.networks.entry(network).or_insert(0) += 1;
        Ok(ConnectionPermit {
            limiter: Arc::clone(self),
            address,
            network,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    /// Connections open now from `address`.
    pub fn open_from(&self, address: IpAddr) -> usize {
        let address = address.to_canonical();
        self.lock().addresses.get(&address).copied().unwrap_or(0)
    }

    /// Whether a refusal for `reason` may be logged now: `Some(left_out)` (see
    /// [`LogThrottle::allow`]).
    pub fn log_refusal(&self, reason: Refusal) -> Option<u64> {
        let index = match reason {
            Refusal::Address => 0,
            Refusal::Network => 1,
            Refusal::Total => 2,
        };
        self.refusal_logs[index].allow()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        fn release(map: &mut HashMap<IpAddr, usize>, key: IpAddr) {
            if let Some(count) = map.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    map.remove(&key);
                }
            }
        }
        let mut counts = self.limiter.lock();
        counts.total = counts.total.saturating_sub(1);
        release(&mut counts.addresses, self.address);
        release(&mut counts.networks, self.network);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(total: usize, per_address: usize, per_network: usize) -> Arc<ConnectionLimiter> {
        ConnectionLimiter::new(ConnectionLimits {
            total,
            per_address,
            per_network,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_are_masked_prefixes() {
        let limiter = limiter(10, 10, 10);
        assert_eq!(limiter.network_of(ip("192.0.2.77")), ip("192.0.2.0"));
        assert_eq!(
            limiter.network_of(ip("2001:db8:1:2:3:4:5:6")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(limiter.network_of(ip("::ffff:192.0.2.9")), ip("192.0.2.0"));
    }

    #[test]
    fn caps_per_address_per_network_and_total_with_a_reserve_for_newcomers() {
        let limiter = limiter(20, 3, 5);
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(limiter.try_acquire(ip("10.0.0.1")).unwrap());
        }
        assert_eq!(
            limiter.try_acquire(ip("10.0.0.1")).unwrap_err(),
            Refusal::Address
        );
        held.push(limiter.try_acquire(ip("10.0.0.2")).unwrap());
        held.push(limiter.try_acquire(ip("10.0.0.3")).unwrap());
        assert_eq!(
            limiter.try_acquire(ip("10.0.0.4")).unwrap_err(),
            Refusal::Network
        );
        // Fill up to the reserve (20 - 2) from other networks.
        for network in 1..=3 {
            for host in 1..=5 {
                if held.len() < 18 {
                    let address = ip(&format!("10.0.{network}.{host}"));
                    held.push(limiter.try_acquire(address).unwrap());
                }
            }
        }
        assert_eq!(limiter.open(), 18);
        // A network that holds a few connections may still take the reserve, one that holds
        // more may not; a new one may, until the listener is full.
        held.push(limiter.try_acquire(ip("10.0.3.9")).unwrap());
        assert_eq!(
            limiter.try_acquire(ip("10.0.3.10")).unwrap_err(),
            Refusal::Total
        );
        held.push(limiter.try_acquire(ip("10.9.9.9")).unwrap());
        assert_eq!(
            limiter.try_acquire(ip("10.8.8.8")).unwrap_err(),
            Refusal::Total
        );
        held.clear();
        assert_eq!(limiter.open(), 0);
        assert_eq!(limiter.open_from(ip("10.0.0.1")), 0);
        assert!(limiter.try_acquire(ip("10.0.0.1")).is_ok());
    }
}
