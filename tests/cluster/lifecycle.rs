//! Re-verification triggers, quarantine, restart, outage, RBAC.
