//! The consent-gate protocol with an attacker: one World around the real core.
