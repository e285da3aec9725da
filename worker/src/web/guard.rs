//! What protects the listener from a client, valid token or not: rate
//! limits per token and per client address, the sign-in limit, the cap on
//! a token's sessions, the connection hygiene and the file routes' pace.
//! Configured in `[api]` and `[http]` (`docs/configuration.md`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::{Quota, RateLimiter};

use super::problem::Problem;
use crate::telemetry::events::{self, ApiRefusal};

/// Keys a limiter tracks before it forgets those back at full allowance.
const MAX_TRACKED_KEYS: usize = 10_000;

/// A limiter keyed by client address.
pub type AddressLimiter = governor::DefaultKeyedRateLimiter<IpAddr>;

/// The limits of one listener of the API and the screens.
#[derive(Clone)]
pub struct Guard {
    /// Requests without a valid token, per client address; `None`: no limit.
    pub per_address: Option<Arc<AddressLimiter>>,
    /// Sign-in attempts per client address; `None`: no limit.
    pub sign_in: Option<Arc<AddressLimiter>>,
    /// Sessions one token may have open.
    pub sessions_per_token: u32,
    /// Header-read and idle timeouts, and the connection cap.
    pub hygiene: crate::listen::Hygiene,
    /// A file route's deadline grows by a second per this many bytes.
    pub file_bytes_per_second: u64,
    /// The slowest a file body may arrive, after the header timeout's grace.
    pub min_upload_bytes_per_second: u64,
    /// Previews at once across tenants.
    pub previews_at_once: u32,
}

impl Default for Guard {
    /// The built-in defaults of `config/default.toml`.
    fn default() -> Self {
        Guard::from_config(
            &crate::config::Config::built_in().api,
            &crate::config::Config::built_in().http,
        )
    }
}

fn limiter(per: Quota) -> Arc<AddressLimiter> {
    Arc::new(RateLimiter::keyed(per))
}

/// A per-address limiter of `per_second` on average and `burst` at once;
/// `None` when `per_second` is 0.
pub fn address_limiter(per_second: u32, burst: u32) -> Option<Arc<AddressLimiter>> {
    let n = NonZeroU32::new(per_second)?;
    Some(limiter(
        Quota::per_second(n).allow_burst(NonZeroU32::new(burst).unwrap_or(n)),
    ))
}

impl Guard {
    /// From `[api]` and `[http]`.
    pub fn from_config(api: &crate::config::ApiConfig, http: &crate::config::HttpConfig) -> Self {
        let per_address = NonZeroU32::new(api.rate_per_address_per_second).map(|n| {
            let burst = NonZeroU32::new(api.rate_per_address_burst).unwrap_or(n);
            limiter(Quota::per_second(n).allow_burst(burst))
        });
        let sign_in = NonZeroU32::new(api.sign_ins_per_minute).map(|n| {
            let burst = NonZeroU32::new(api.sign_in_burst).unwrap_or(n);
            limiter(Quota::per_minute(n).allow_burst(burst))
        });
        Guard {
            per_address,
            sign_in,
            sessions_per_token: api.sessions_per_token.max(1),
            hygiene: http.hygiene(),
            file_bytes_per_second: api.file_bytes_per_second.max(1),
            min_upload_bytes_per_second: api.min_upload_bytes_per_second.max(1),
            previews_at_once: api.previews_at_once.max(1),
        }
    }

    /// Checks `who` against `limiter`; the 429 to answer when over it. The
    /// refusal is counted and logged sampled ([`events::api_refused`]).
    // The error is the answer itself, handed straight back by the caller.
    #[allow(clippy::result_large_err)]
    pub fn check<K>(
        limiter: Option<&governor::DefaultKeyedRateLimiter<K>>,
        key: &K,
        reason: ApiRefusal,
        who: &str,
    ) -> Result<(), Response>
    where
        K: std::hash::Hash + Eq + Clone,
    {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        // A limiter keeps a state per key: clients spraying addresses (an
        // IPv6 /64 has plenty) would grow it without end. Keys whose limit
        // has fully recovered hold nothing worth keeping; drop them once
        // there are many.
        if limiter.len() > MAX_TRACKED_KEYS {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let Err(wait) = limiter.check_key(key) else {
            return Ok(());
        };
        use governor::clock::{Clock, DefaultClock};
        let secs = wait
            .wait_time_from(DefaultClock::default().now())
            .as_secs_f64()
            .ceil()
            .max(1.0) as u64;
        events::api_refused(reason, who);
        Err(too_many(
            match reason {
                ApiRefusal::SignInRate => "too many sign-in attempts from this address",
                ApiRefusal::AddressRate => {
                    "too many requests without a valid token from this address"
                }
                _ => "too many requests with this token",
            },
            secs,
        ))
    }

    /// [`Guard::check`] keyed by the client's address (unspecified when the
    /// listener did not say, as for a router called in-process).
    #[allow(clippy::result_large_err)]
    pub fn check_address(
        limiter: Option<&AddressLimiter>,
        client: Option<crate::listen::ClientAddr>,
        reason: ApiRefusal,
    ) -> Result<(), Response> {
        let addr = client.map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| c.0);
        Self::check(limiter, &addr, reason, &addr.to_string())
    }

    /// The deadline of a file route whose body had `bytes`: `base` plus a
    /// second per `file_bytes_per_second`.
    pub fn file_deadline(&self, base: Duration, bytes: u64) -> Duration {
        base + Duration::from_secs(bytes / self.file_bytes_per_second)
    }
}

/// A 429 saying `what`, and when to try again.
pub fn too_many(what: &str, retry_after_secs: u64) -> Response {
    let mut res = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        format!("{what}; try again in {retry_after_secs} s"),
    )
    .into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limiter_sprayed_with_addresses_stays_bounded() {
        // 1,000 a second: a key is back at full allowance a millisecond
        // after its one request, so all but the newest can be forgotten.
        let limiter = address_limiter(1000, 1).unwrap();
        for i in 0..(3 * MAX_TRACKED_KEYS as u32) {
            let ip = IpAddr::from(std::net::Ipv6Addr::from(u128::from(i)));
            let _ = Guard::check(Some(&limiter), &ip, ApiRefusal::AddressRate, "x");
        }
        // Without the pruning it would hold all 30,000.
        assert!(limiter.len() <= MAX_TRACKED_KEYS + 1, "{}", limiter.len());
    }
}
