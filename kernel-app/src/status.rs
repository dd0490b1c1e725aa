//! The states the node reports: each backing service's [`Status`] and the node's [`Health`],
//! with the codes the EigenLayer AVS Node API (`crate::api`) answers for them. The services
//! (`crate::avs`, `crate::chain`) say their status; the API and the metrics report it: this
//! module depends on neither.

/// The state of one backing service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Working.
    Up,
    /// Not working.
    Down,
    /// Not known yet: starting, or not tried yet.
    Initializing,
}

impl Status {
    /// Its name in `GET /eigen/node/services`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "Up",
            Status::Down => "Down",
            Status::Initializing => "Initializing",
        }
    }

    /// The status code of `GET /eigen/node/services/{id}/health`: 200, 503 or 206.
    pub fn http_status(self) -> u16 {
        match self {
            Status::Up => 200,
            Status::Down => 503,
            Status::Initializing => 206,
        }
    }
}

/// The node's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Every service is up (200).
    Healthy,
    /// Initializing, or a service that is not essential is down (206).
    PartiallyHealthy,
    /// An essential service (the signer) is down: the node signs nothing (503).
    Unhealthy,
}

impl Health {
    /// The status code of `GET /eigen/node/health`.
    pub fn http_status(self) -> u16 {
        match self {
            Health::Healthy => 200,
            Health::PartiallyHealthy => 206,
            Health::Unhealthy => 503,
        }
    }

    /// The value of `eigen_performance_score`: 100, 50 or 0.
    pub fn performance_score(self) -> u8 {
        match self {
            Health::Healthy => 100,
            Health::PartiallyHealthy => 50,
            Health::Unhealthy => 0,
        }
    }
}
