//! File descriptors: every connection holds one, and so do the store, the search index,
//! outbound sessions, DNS sockets and the admin endpoint. When connections take them all,
//! `accept` fails with EMFILE for every listener at once (issue 13: 1,100 idle connects under
//! the usual soft limit of 1,024 made JMAP and SMTP unreachable). So at start-up the soft
//! `RLIMIT_NOFILE` is raised to the hard limit (allowed without privileges), and the
//! connection caps of the HTTP and SMTP listeners are fitted under it, minus
//! `server.fd_reserve` for everything else.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// What the process may open, after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorLimit {
    /// The soft limit before start-up.
    pub before: Option<u64>,
    /// The soft limit now (`None`: unlimited).
    pub now: Option<u64>,
}

/// Raises the soft limit on open files to the hard limit. Never fails the start: a limit
/// that cannot be raised is reported and the budgets are fitted under what there is.
pub fn raise_nofile_limit() -> DescriptorLimit {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current == limit.maximum {
        return DescriptorLimit {
            before,
            now: before,
        };
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => DescriptorLimit {
            before,
            now: getrlimit(Resource::Nofile).current,
        },
        Err(error) => {
            tracing::warn!(%error, soft = ?before, hard = ?limit.maximum,
                "cannot raise the open file limit to the hard limit");
            DescriptorLimit {
                before,
                now: before,
            }
        }
    }
}

/// Fits the HTTP and SMTP connection caps under `limit - reserve` descriptors, shrinking both
/// in proportion when their sum does not fit (at least 1 each). Returns the caps to use.
pub fn fit_connection_caps(
    limit: Option<u64>,
    reserve: u64,
    http: usize,
    smtp: usize,
) -> (usize, usize) {
    let Some(limit) = limit else {
        return (http, smtp);
    };
    let budget = usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX);
    let wanted = http.saturating_add(smtp);
    if wanted <= budget {
        return (http, smtp);
    }
    let share = |cap: usize| {
        let scaled = (cap as u128 * budget as u128) / (wanted.max(1) as u128);
        usize::try_from(scaled).unwrap_or(usize::MAX).max(1)
    };
    (share(http), share(smtp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_under_the_descriptor_budget() {
        assert_eq!(fit_connection_caps(None, 256, 4096, 1000), (4096, 1000));
        assert_eq!(
            fit_connection_caps(Some(1 << 20), 256, 4096, 1000),
            (4096, 1000)
        );
        // 1,024 descriptors, 256 kept back: 768 for 4,096 + 1,000 wanted.
        let (http, smtp) = fit_connection_caps(Some(1024), 256, 4096, 1000);
        assert!(http + smtp <= 768, "{http} + {smtp}");
        assert_eq!((http, smtp), (617, 150));
        assert_eq!(fit_connection_caps(Some(100), 256, 10, 10), (1, 1));
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise_nofile_limit();
        let now = getrlimit(Resource::Nofile);
        assert_eq!(limit.now, now.current);
        assert_eq!(now.current, now.maximum);
    }
}
